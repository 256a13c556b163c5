package proxy

import (
	"net/http"
	"sort"
	"strings"
	"testing"
)

func TestOutboundHeaderAllowlist(t *testing.T) {
	in := http.Header{}
	for _, k := range []string{
		"Authorization", "X-Api-Key", "Api-Key", "Cookie", "Ocp-Apim-Subscription-Key", "Proxy-Authorization",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Original-Url",
		"X-Http-Method-Override", "X-Claude-Code-Session-Id", "Host", "Connection", "Upgrade", "Te",
	} {
		in.Set(k, "attacker")
	}
	// Underscore and dot aliases are distinct names to Go but may collapse
	// downstream (oauth2-proxy GHSA-vjrc-mh2v-45x6, Traefik GHSA-rf44-j88r-hh8c).
	in["X_Api_Key"] = []string{"attacker"}
	in["X.Api.Key"] = []string{"attacker"}
	in["Anthropic_Version"] = []string{"attacker"}
	in.Set("Content-Type", "application/json")
	in.Set("Accept", "text/event-stream")
	in.Set("User-Agent", "claude-cli/2.1.300 (external, cli)")
	in.Set("Anthropic-Version", "2023-06-01")
	in["Anthropic-Beta"] = []string{"a-2025-01-01,b-2026-02-02", "c-2099"}
	in.Set("Anthropic-Some-Future-Header", "x")
	in.Set("X-Stainless-Lang", "go")
	in.Set("Accept-Encoding", "gzip, br")

	out := OutboundHeader(in)
	var got []string
	for k := range out {
		got = append(got, k)
	}
	sort.Strings(got)
	want := []string{"Accept", "Accept-Encoding", "Anthropic-Beta", "Anthropic-Some-Future-Header", "Anthropic-Version", "Content-Type", "User-Agent", "X-Stainless-Lang"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outbound headers %v, want %v", got, want)
	}
	if v := out["Anthropic-Beta"]; len(v) != 2 || v[0] != "a-2025-01-01,b-2026-02-02" {
		t.Fatalf("anthropic-beta not verbatim: %v", v)
	}
	if out.Get("Accept-Encoding") != "identity" {
		t.Fatalf("accept-encoding %q", out.Get("Accept-Encoding"))
	}
}

func TestResponseHeaderFilter(t *testing.T) {
	src := http.Header{}
	for k, v := range map[string]string{
		"Set-Cookie": "a=b", "Www-Authenticate": "Bearer", "Anthropic-Organization-Id": "org", "X-Api-Key": "k",
		"Connection": "close, X-Hop", "X-Hop": "1", "Transfer-Encoding": "chunked", "X_Secret": "1", "X-Upstream-Token": "t",
		"Request-Id": "req_1", "Retry-After": "3", "Anthropic-Ratelimit-Tokens-Remaining": "1000", "Content-Type": "application/json",
		"Apim-Request-Id": "a1", "X-Ms-Password-Hint": "p", "X-Apikey": "k",
		// Past the 64-byte stack buffer the filter lower-cases into.
		"X-A-Very-Long-Header-Name-Well-Past-Sixty-Four-Bytes-That-Carries-A-Secret": "s",
		"X-A-Very-Long-Header-Name-Well-Past-Sixty-Four-Bytes-That-Is-Harmless":      "ok",
	} {
		src.Set(k, v)
	}
	dst := http.Header{}
	copyResponseHeader(dst, src)
	var got []string
	for k := range dst {
		got = append(got, k)
	}
	sort.Strings(got)
	want := []string{"Anthropic-Ratelimit-Tokens-Remaining", "Apim-Request-Id", "Content-Type", "Request-Id", "Retry-After",
		"X-A-Very-Long-Header-Name-Well-Past-Sixty-Four-Bytes-That-Is-Harmless"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("relayed %v, want %v", got, want)
	}
}
