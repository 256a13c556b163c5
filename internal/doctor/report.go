package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for a person: one line per check (status,
// name, message), the fix under every warning and failure, and a summary
// line last.
func (r Report) WriteText(w io.Writer) error {
	width := 0
	for _, e := range r.Entries {
		width = max(width, len(e.Name))
	}
	var b strings.Builder
	for _, e := range r.Entries {
		label := string(e.Status)
		if e.Status == Fail {
			label = "FAIL"
		}
		pad := strings.Repeat(" ", 6+width+2)
		fmt.Fprintf(&b, "%-5s %-*s  %s\n", label, width, e.Name, indentLines(e.Message, pad))
		if e.Fix != "" && (e.Status == Fail || e.Status == Warn) {
			fmt.Fprintf(&b, "%sfix: %s\n", pad, indentLines(e.Fix, pad+"     "))
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.summary())
	_, err := io.WriteString(w, b.String())
	return err
}

func (r Report) summary() string {
	verdict := "all checks passed"
	switch {
	case r.Failed():
		verdict = "FAILED"
	case r.Count(Warn) > 0:
		verdict = "passed with warnings"
	}
	return fmt.Sprintf("%d checks: %d ok, %d warn, %d fail, %d skip: %s",
		len(r.Entries), r.Count(OK), r.Count(Warn), r.Count(Fail), r.Count(Skip), verdict)
}

func indentLines(s, pad string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

// jsonReport is the --json shape (documented in docs/doctor.md).
type jsonReport struct {
	OK      bool           `json:"ok"`
	Summary map[Status]int `json:"summary"`
	Checks  []jsonEntry    `json:"checks"`
}

type jsonEntry struct {
	Name       string `json:"name"`
	Status     Status `json:"status"`
	Message    string `json:"message"`
	Fix        string `json:"fix,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// WriteJSON writes the report as one indented JSON document:
// {"ok", "summary": {"ok","warn","fail","skip"}, "checks": [{"name",
// "status", "message", "fix", "duration_ms"}]}.
func (r Report) WriteJSON(w io.Writer) error {
	out := jsonReport{
		OK:      !r.Failed(),
		Summary: map[Status]int{OK: r.Count(OK), Warn: r.Count(Warn), Fail: r.Count(Fail), Skip: r.Count(Skip)},
		Checks:  make([]jsonEntry, 0, len(r.Entries)),
	}
	for _, e := range r.Entries {
		out.Checks = append(out.Checks, jsonEntry{Name: e.Name, Status: e.Status, Message: e.Message, Fix: e.Fix, DurationMS: e.Duration.Milliseconds()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
