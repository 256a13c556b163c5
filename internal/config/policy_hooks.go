package config

// Hooks that attach the governance sections (policy.go) to the root Config.

func (c *Config) applyPolicyDefaults() {
	applyGovernanceDefaults(c.Policies, c.GroupLimits, &c.Limits)
}

func (c *Config) validatePolicies(v *validator) {
	validateGovernance(v, c.Policies, c.GroupLimits, &c.Limits, c.Pricing, c.Models,
		func(name string) bool { return c.UpstreamByName(name) != nil }, c.Server.MaxRequestDuration)
}
