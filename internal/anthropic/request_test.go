package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestPeekRequest(t *testing.T) {
	tests := []struct {
		body   string
		want   Request
		errIs  error
		errAny bool
	}{
		{body: `{"model":"claude-sonnet-4-6","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi \"model\": x"}]}`,
			want: Request{Model: "claude-sonnet-4-6", MaxTokens: 1024, Stream: true}},
		{body: ` { "messages" : [ {"model":"nested-is-ignored"} ], "model" : "m\u0031" , "stream":false }`, want: Request{Model: "m1"}},
		{body: `{}`, want: Request{}},
		{body: `{"metadata":{"model":"x","stream":true},"max_tokens":5}`, want: Request{MaxTokens: 5}},
		{body: `not json`, errIs: ErrNotJSON},
		{body: `[1,2]`, errIs: ErrNotObject},
		{body: `{"model":"a","model":"b"}`, errIs: ErrDuplicateField},
		{body: `{"stream":false,"stream":true}`, errIs: ErrDuplicateField},
		{body: `{"model":42}`, errAny: true},
	}
	for _, tt := range tests {
		got, err := PeekRequest([]byte(tt.body))
		switch {
		case tt.errIs != nil:
			if !errors.Is(err, tt.errIs) {
				t.Errorf("%s: err = %v, want %v", tt.body, err, tt.errIs)
			}
			continue
		case tt.errAny:
			if err == nil {
				t.Errorf("%s: no error", tt.body)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if got.Model != tt.want.Model || got.Stream != tt.want.Stream || got.MaxTokens != tt.want.MaxTokens {
			t.Errorf("%s: got %+v, want %+v", tt.body, got, tt.want)
		}
	}
}

func TestReplaceModelKeepsEveryOtherByte(t *testing.T) {
	body := []byte("{\n  \"system\": [{\"type\":\"text\",\"text\":\"x\",\"cache_control\":{\"type\":\"ephemeral\"}}],\n  \"model\" :  \"claude-sonnet-4-6\",\n  \"unknown_future_field\": {\"a\": [1, 2.50, null]},\n  \"max_tokens\": 10\n}")
	r, err := PeekRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	out := r.ReplaceModel(body, "my-deployment")
	want := bytes.Replace(body, []byte(`"claude-sonnet-4-6"`), []byte(`"my-deployment"`), 1)
	if !bytes.Equal(out, want) {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	if same := r.ReplaceModel(body, "claude-sonnet-4-6"); !bytes.Equal(same, body) {
		t.Fatal("identity mapping changed the body")
	}
}

func FuzzPeekRequest(f *testing.F) {
	f.Add([]byte(`{"model":"claude-sonnet-4-6","max_tokens":1024,"stream":true,"messages":[]}`))
	f.Add([]byte(`{"a":"\\\"","model":"x\"y"}`))
	f.Add([]byte(`{"model":"a","model":"b"}`))
	f.Add([]byte(`{"model":"a","mod\u0065l":"b"}`))
	f.Add([]byte(`{"Model":"a"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := PeekRequest(body)
		if err != nil {
			return
		}
		// Whatever the gateway read as the model must be what a standard
		// decoder reads (no parser differential), and replacing it must
		// leave valid JSON naming the new model.
		// (A map decode matches keys exactly, as the upstream does.)
		var std map[string]any
		if json.Unmarshal(body, &std) == nil {
			if s, ok := std["model"].(string); ok && s != r.Model {
				t.Fatalf("peek read model %q, encoding/json read %q", r.Model, s)
			}
		}
		if r.Model == "" {
			return
		}
		out := r.ReplaceModel(body, "mapped-model")
		var after struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(out, &after); err != nil || after.Model != "mapped-model" {
			t.Fatalf("after replace: %v %q\n%s", err, after.Model, out)
		}
	})
}

// TestPeekRequestReadsKeysAsTheUpstreamWill: a key is compared after
// unescaping, as every JSON decoder upstream compares it, and a case
// variant of a governed key is refused (a case-insensitive decoder would
// read it). Otherwise {"model":"allowed","mod\u0065l":"other"} would be
// admitted as "allowed" and served as "other".
func TestPeekRequestReadsKeysAsTheUpstreamWill(t *testing.T) {
	tests := []struct {
		body  string
		model string
		err   error
	}{
		{`{"model":"a","mod\u0065l":"b"}`, "", ErrDuplicateField},
		{`{"mod\u0065l":"b"}`, "b", nil},
		{`{"\u006d\u006f\u0064\u0065\u006c":"b","max_tokens":5}`, "b", nil},
		{`{"model":"a","Model":"b"}`, "", ErrAmbiguousField},
		{`{"MODEL":"b"}`, "", ErrAmbiguousField},
		{`{"model":"a","ſtream":true}`, "", ErrAmbiguousField},
		{`{"model":"a","Max_Tokens":1}`, "", ErrAmbiguousField},
		{`{"model":"a","max_tokenS":1,"max_tokens":2}`, "", ErrAmbiguousField},
		{`{"model":"a","stream":true,"str\u0065am":false}`, "", ErrDuplicateField},
		{`{"model":"a","models":1,"mode":2,"messages":[]}`, "a", nil},
	}
	for _, tc := range tests {
		r, err := PeekRequest([]byte(tc.body))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || r.Model != tc.model {
			t.Errorf("%s: model %q, err %v; want %q", tc.body, r.Model, err, tc.model)
		}
	}
	// The escaped key's value is the one ReplaceModel rewrites.
	body := []byte(`{"mod\u0065l":"b","max_tokens":5}`)
	r, err := PeekRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	var after map[string]any
	if err := json.Unmarshal(r.ReplaceModel(body, "dep-1"), &after); err != nil || after["model"] != "dep-1" {
		t.Fatalf("after replace: %v %v", after, err)
	}
}
