package credential

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzTokenResponse feeds token endpoint bodies (untrusted input) to the
// decoder and the log-reason renderer: no panic, bounded, single-line reason.
func FuzzTokenResponse(f *testing.F) {
	f.Add(`{"access_token":"a","expires_in":"3599","expires_on":"1506484173","token_type":"Bearer"}`)
	f.Add(`{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"x"}`)
	f.Add(`{"error":"invalid_client","error_description":"AADSTS7000215: bad\r\nTrace ID: 1","error_codes":[7000215]}`)
	f.Add(`{"statusCode":400,"message":"Unable to load the proper Managed Identity.","correlationId":"c"}`)
	f.Add(`{"expires_in":1e3}`)
	f.Fuzz(func(t *testing.T, body string) {
		var tr tokenResponse
		if err := json.Unmarshal([]byte(body), &tr); err != nil {
			return
		}
		code, text := tr.reason()
		if strings.ContainsAny(text, "\r\n") || len(text) > 310 {
			t.Fatalf("reason not a bounded single line: %q", text)
		}
		_ = code
	})
}
