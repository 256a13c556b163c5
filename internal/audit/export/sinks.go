package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// JSONLines writes events as JSON lines to a file (appended and fsynced
// per batch) or to an io.Writer such as stdout.
type JSONLines struct {
	mu   sync.Mutex
	path string
	w    io.Writer
}

// NewJSONLinesFile appends to path ("-" for os.Stdout is the caller's
// choice: use NewJSONLinesWriter).
func NewJSONLinesFile(path string) *JSONLines { return &JSONLines{path: path} }

// NewJSONLinesWriter writes to w (e.g. the process's stdout).
func NewJSONLinesWriter(w io.Writer) *JSONLines { return &JSONLines{w: w} }

// Name implements Sink.
func (j *JSONLines) Name() string {
	if j.path != "" {
		return "jsonl:" + j.path
	}
	return "jsonl:stdout"
}

// Send implements Sink.
func (j *JSONLines) Send(_ context.Context, batch []Event) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range batch {
		if err := enc.Encode(&batch[i]); err != nil {
			return err
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.w != nil {
		_, err := j.w.Write(buf.Bytes())
		return err
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// HTTPOptions are shared by the HTTP sinks.
type HTTPOptions struct {
	// URL receives the POSTs. Required.
	URL string
	// Headers are added to every request (e.g. an Authorization for a
	// webhook). Values are secrets: never logged.
	Headers map[string]string
	// Client sends the requests. Default: a client with a 30s timeout
	// (the exporter also bounds each attempt).
	Client *http.Client
}

func (o *HTTPOptions) client() *http.Client {
	if o.Client != nil {
		return o.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// post sends body and treats any 2xx as an acknowledgement.
func post(ctx context.Context, o *HTTPOptions, contentType string, body []byte, extra map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range o.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := o.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

func batchKey(batch []Event) string {
	if len(batch) == 0 {
		return ""
	}
	return batch[0].IdempotencyKey + ".." + batch[len(batch)-1].IdempotencyKey
}

// Webhook POSTs {"events":[Event...]} with an Idempotency-Key header naming
// the batch ("<first key>..<last key>"); each event carries its own key.
type Webhook struct{ opts HTTPOptions }

// NewWebhook returns a generic webhook sink.
func NewWebhook(opts HTTPOptions) (*Webhook, error) {
	if opts.URL == "" {
		return nil, errors.New("export: webhook URL is required")
	}
	return &Webhook{opts: opts}, nil
}

// Name implements Sink.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Sink.
func (w *Webhook) Send(ctx context.Context, batch []Event) error {
	body, err := json.Marshal(struct {
		Events []Event `json:"events"`
	}{batch})
	if err != nil {
		return err
	}
	return post(ctx, &w.opts, "application/json", body, map[string]string{"Idempotency-Key": batchKey(batch)})
}

// SplunkHEC sends events to a Splunk HTTP Event Collector
// (/services/collector/event), one JSON object per event, with the
// idempotency key as an indexed field.
type SplunkHEC struct {
	opts       HTTPOptions
	token      string
	sourcetype string
	index      string
}

// SplunkOptions configures NewSplunkHEC.
type SplunkOptions struct {
	HTTPOptions
	Token      string // HEC token; sent as "Authorization: Splunk <token>"
	Sourcetype string // default "gatehouse:audit"
	Index      string // optional
}

// NewSplunkHEC returns a Splunk HEC sink. URL is the collector's endpoint,
// e.g. https://splunk:8088/services/collector/event.
func NewSplunkHEC(opts SplunkOptions) (*SplunkHEC, error) {
	if opts.URL == "" || opts.Token == "" {
		return nil, errors.New("export: splunk_hec needs a URL and a token")
	}
	if opts.Sourcetype == "" {
		opts.Sourcetype = "gatehouse:audit"
	}
	return &SplunkHEC{opts: opts.HTTPOptions, token: opts.Token, sourcetype: opts.Sourcetype, index: opts.Index}, nil
}

// Name implements Sink.
func (s *SplunkHEC) Name() string { return "splunk_hec" }

// Send implements Sink.
func (s *SplunkHEC) Send(ctx context.Context, batch []Event) error {
	var buf bytes.Buffer
	for i := range batch {
		ev := &batch[i]
		t := ev.Time()
		obj := map[string]any{
			"time":       strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 6, 64),
			"source":     "gatehouse",
			"sourcetype": s.sourcetype,
			"event":      ev,
			"fields":     map[string]string{"idempotency_key": ev.IdempotencyKey, "kind": ev.Kind},
		}
		if s.index != "" {
			obj["index"] = s.index
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return post(ctx, &s.opts, "application/json", buf.Bytes(), map[string]string{"Authorization": "Splunk " + s.token})
}

// OTLP sends events as OpenTelemetry log records over OTLP/HTTP with the
// JSON encoding (POST <endpoint>/v1/logs). Each record's body is the
// event JSON; attributes carry the idempotency key (event.id), request id
// and kind.
type OTLP struct{ opts HTTPOptions }

// NewOTLP returns an OTLP/HTTP logs sink; URL is the full logs endpoint,
// e.g. http://collector:4318/v1/logs.
func NewOTLP(opts HTTPOptions) (*OTLP, error) {
	if opts.URL == "" {
		return nil, errors.New("export: otlp URL is required")
	}
	return &OTLP{opts: opts}, nil
}

// Name implements Sink.
func (o *OTLP) Name() string { return "otlp" }

type otlpAny struct {
	StringValue string `json:"stringValue"`
}

type otlpKV struct {
	Key   string  `json:"key"`
	Value otlpAny `json:"value"`
}

// Send implements Sink.
func (o *OTLP) Send(ctx context.Context, batch []Event) error {
	type logRecord struct {
		TimeUnixNano         string   `json:"timeUnixNano"`
		ObservedTimeUnixNano string   `json:"observedTimeUnixNano"`
		SeverityNumber       int      `json:"severityNumber"`
		SeverityText         string   `json:"severityText"`
		Body                 otlpAny  `json:"body"`
		Attributes           []otlpKV `json:"attributes"`
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	recs := make([]logRecord, 0, len(batch))
	for i := range batch {
		ev := &batch[i]
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		var rid struct {
			RequestID string `json:"request_id"`
		}
		_ = json.Unmarshal(ev.Record, &rid)
		recs = append(recs, logRecord{
			TimeUnixNano: strconv.FormatInt(ev.Time().UnixNano(), 10), ObservedTimeUnixNano: now,
			SeverityNumber: 9, SeverityText: "INFO", Body: otlpAny{string(body)},
			Attributes: []otlpKV{
				{"event.id", otlpAny{ev.IdempotencyKey}},
				{"event.name", otlpAny{"gatehouse.audit." + ev.Kind}},
				{"gatehouse.request_id", otlpAny{rid.RequestID}},
			},
		})
	}
	payload := map[string]any{"resourceLogs": []any{map[string]any{
		"resource": map[string]any{"attributes": []otlpKV{{"service.name", otlpAny{"gatehouse"}}}},
		"scopeLogs": []any{map[string]any{
			"scope":      map[string]string{"name": "gatehouse.audit"},
			"logRecords": recs,
		}},
	}}}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	return post(ctx, &o.opts, "application/json", body, nil)
}
