package config

// Hooks that attach the governance sections (policy.go) to the root Config.

func (c *Config) applyPolicyDefaults() {
	applyGovernanceDefaults(c.Policies, c.GroupLimits, &c.Limits)
}

func (c *Config) validatePolicies(v *validator) {
	validateGovernance(v, c.Policies, c.GroupLimits, &c.Limits, c.Pricing, c.Models,
		func(name string) bool { return c.UpstreamByName(name) != nil }, c.Server.MaxRequestDuration)
	for i, p := range c.Policies {
		switch p.ContentCapture {
		case "", "off", "metadata":
		case "redacted", "full":
			if len(c.Audit.Content.Keys) == 0 {
				v.index("policies", i).add("content_capture", "%q stores encrypted content and needs audit.content.keys", p.ContentCapture)
			}
		default:
			v.index("policies", i).add("content_capture", "%q is not off, metadata, redacted or full", p.ContentCapture)
		}
	}
}
