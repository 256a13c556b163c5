package anthropic

import (
	"bytes"
	"encoding/json"
)

// maxEventData caps how much of one interesting event's data the tap keeps
// (message_start, message_delta and error events are small; content deltas
// are never buffered).
const maxEventData = 256 << 10

// SSETap observes a Messages event stream as it passes through and extracts
// token usage, the stop reason and any error event. It never changes bytes:
// callers Write a copy of every chunk they forward, in order, in whatever
// pieces the network delivered them.
//
// Usage follows the documented rules (contract §7.2): message_start carries
// the initial usage; each message_delta carries cumulative totals that
// override the fields it names. An interrupted stream reports what was seen.
type SSETap struct {
	line      []byte // partial line carried between writes
	event     []byte // current event name
	data      []byte // current event data (only for interesting events)
	dataOver  bool   // data exceeded maxEventData
	skipData  bool   // current event is not interesting
	pending   bool   // an event or data field since the last dispatch
	lastCR    bool   // the last chunk ended with CR (a following LF belongs to it)
	usage     Usage
	started   bool // message_start seen
	stopped   bool // message_stop seen
	stopReson string
	errType   string
	errMsg    string
	model     string
	msgID     string
	events    int

	capture bool
	capMax  int
	capSize int
	capOver bool
	blocks  []blockBuf
}

// blockBuf assembles one content block without quadratic copying.
type blockBuf struct {
	typ, id, name string
	text, input   []byte
}

// ContentBlock is one assembled block of a streamed response: text,
// thinking, or a tool call (its input as the JSON the deltas spelled out).
type ContentBlock struct {
	Type  string `json:"type"`            // text | thinking | tool_use | other types as announced
	Text  string `json:"text,omitempty"`  // text and thinking
	ID    string `json:"id,omitempty"`    // tool_use id
	Name  string `json:"name,omitempty"`  // tool name
	Input string `json:"input,omitempty"` // tool_use input JSON
}

// NewSSETap returns an empty tap.
func NewSSETap() *SSETap { return &SSETap{} }

// CaptureContent makes the tap also assemble the response's content blocks
// (for audit content capture), keeping at most max bytes of text; past that
// the content is marked truncated. Without it the tap decodes only the
// usage-bearing events.
func (t *SSETap) CaptureContent(max int) {
	t.capture, t.capMax = true, max
}

// Content returns the assembled blocks and whether they were truncated.
func (t *SSETap) Content() ([]ContentBlock, bool) {
	out := make([]ContentBlock, 0, len(t.blocks))
	for _, b := range t.blocks {
		out = append(out, ContentBlock{Type: b.typ, Text: string(b.text), ID: b.id, Name: b.name, Input: string(b.input)})
	}
	return out, t.capOver
}

// Write feeds the next chunk of the stream. It never fails.
// Lines end at LF, CRLF or CR (WHATWG HTML §9.2.6), however the chunks
// split them.
func (t *SSETap) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > 0 {
		if t.lastCR && p[0] == '\n' { // the LF of a CRLF split across writes
			p = p[1:]
		}
		t.lastCR = false
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i
		if end < 0 {
			end = len(p)
		}
		if j := bytes.IndexByte(p[:end], '\r'); j >= 0 {
			i = j
		}
		if i < 0 {
			t.appendLine(p)
			break
		}
		var line []byte
		if len(t.line) > 0 {
			t.appendLine(p[:i])
			line = t.line
		} else {
			line = p[:i]
		}
		t.handleLine(line)
		t.line = t.line[:0]
		if p[i] == '\r' {
			if i+1 == len(p) {
				t.lastCR = true
			} else if p[i+1] == '\n' {
				i++
			}
		}
		p = p[i+1:]
	}
	return n, nil
}

func (t *SSETap) appendLine(p []byte) {
	// A line longer than the cap can only be content we don't parse;
	// keep just enough to recognise the field name.
	if len(t.line)+len(p) > maxEventData+64 {
		room := maxEventData + 64 - len(t.line)
		if room > 0 {
			t.line = append(t.line, p[:room]...)
		}
		t.dataOver = true
		return
	}
	t.line = append(t.line, p...)
}

var (
	fieldEvent = []byte("event")
	fieldData  = []byte("data")
)

func (t *SSETap) handleLine(line []byte) {
	if len(line) == 0 {
		t.dispatch()
		return
	}
	if line[0] == ':' { // comment
		return
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch {
	case bytes.Equal(name, fieldEvent):
		t.pending = true
		t.event = append(t.event[:0], value...)
		t.skipData = !interesting(t.event) && !(t.capture && contentEvent(t.event))
	case bytes.Equal(name, fieldData):
		t.pending = true
		if t.skipData {
			return
		}
		if len(t.data)+len(value)+1 > maxEventData {
			t.dataOver = true
			return
		}
		if len(t.data) > 0 {
			t.data = append(t.data, '\n')
		}
		t.data = append(t.data, value...)
	}
}

func contentEvent(event []byte) bool {
	switch string(event) {
	case "content_block_start", "content_block_delta":
		return true
	}
	return false
}

func interesting(event []byte) bool {
	switch string(event) {
	case "message_start", "message_delta", "message_stop", "error":
		return true
	}
	return false
}

type usageJSON struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
}

func (u *Usage) merge(j *usageJSON) {
	if j == nil {
		return
	}
	set := func(dst *int64, src *int64) {
		if src != nil && *src >= 0 {
			*dst = *src
		}
	}
	set(&u.InputTokens, j.InputTokens)
	set(&u.OutputTokens, j.OutputTokens)
	set(&u.CacheCreationInputTokens, j.CacheCreationInputTokens)
	set(&u.CacheReadInputTokens, j.CacheReadInputTokens)
	if j.CacheCreation != nil {
		set(&u.CacheCreation5m, j.CacheCreation.Ephemeral5m)
		set(&u.CacheCreation1h, j.CacheCreation.Ephemeral1h)
	}
}

type eventJSON struct {
	Type    string `json:"type"`
	Message *struct {
		ID    string     `json:"id"`
		Model string     `json:"model"`
		Usage *usageJSON `json:"usage"`
	} `json:"message"`
	Delta *struct {
		StopReason string `json:"stop_reason"`
	} `json:"delta"`
	Usage *usageJSON `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Index        *int `json:"index"`
	ContentBlock *struct {
		Type string `json:"type"`
		Text string `json:"text"`
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"content_block"`
}

func (t *SSETap) dispatch() {
	defer func() {
		t.event = t.event[:0]
		t.data = t.data[:0]
		t.dataOver = false
		t.skipData = false
		t.pending = false
	}()
	if len(t.event) == 0 && len(t.data) == 0 {
		return
	}
	t.events++
	if t.skipData || t.dataOver || len(t.data) == 0 {
		return
	}
	var ev eventJSON
	if err := json.Unmarshal(t.data, &ev); err != nil {
		return
	}
	typ := ev.Type
	if typ == "" {
		typ = string(t.event)
	}
	switch typ {
	case "message_start":
		if ev.Message != nil {
			t.started = true
			t.msgID = ev.Message.ID
			t.model = ev.Message.Model
			t.usage.merge(ev.Message.Usage)
		}
	case "message_delta":
		t.usage.merge(ev.Usage)
		if ev.Delta != nil && ev.Delta.StopReason != "" {
			t.stopReson = ev.Delta.StopReason
		}
	case "message_stop":
		t.stopped = true
	case "error":
		if ev.Error != nil {
			t.errType = ev.Error.Type
			t.errMsg = ev.Error.Message
		}
	case "content_block_start":
		if t.capture && ev.Index != nil && ev.ContentBlock != nil {
			b := t.block(*ev.Index)
			b.typ, b.id, b.name = ev.ContentBlock.Type, ev.ContentBlock.ID, ev.ContentBlock.Name
			t.appendTo(&b.text, ev.ContentBlock.Text)
		}
	case "content_block_delta":
		if t.capture && ev.Index != nil {
			var d struct {
				Delta struct {
					Type        string `json:"type"`
					Text        string `json:"text"`
					Thinking    string `json:"thinking"`
					PartialJSON string `json:"partial_json"`
				} `json:"delta"`
			}
			if json.Unmarshal(t.data, &d) != nil {
				return
			}
			b := t.block(*ev.Index)
			switch d.Delta.Type {
			case "text_delta":
				t.appendTo(&b.text, d.Delta.Text)
			case "thinking_delta":
				t.appendTo(&b.text, d.Delta.Thinking)
			case "input_json_delta":
				t.appendTo(&b.input, d.Delta.PartialJSON)
			}
		}
	}
}

// block returns the block at index, growing the list (bounded: indexes
// past 1024 are folded into the last block).
func (t *SSETap) block(i int) *blockBuf {
	if i < 0 {
		i = 0
	}
	if i > 1024 {
		i = 1024
	}
	for len(t.blocks) <= i {
		t.blocks = append(t.blocks, blockBuf{})
	}
	return &t.blocks[i]
}

func (t *SSETap) appendTo(dst *[]byte, s string) {
	if s == "" {
		return
	}
	if t.capSize+len(s) > t.capMax {
		t.capOver = true
		return
	}
	t.capSize += len(s)
	*dst = append(*dst, s...)
}

// Usage returns the usage seen so far.
func (t *SSETap) Usage() Usage { return t.usage }

// Complete reports whether message_stop was seen.
func (t *SSETap) Complete() bool { return t.stopped }

// Started reports whether message_start was seen.
func (t *SSETap) Started() bool { return t.started }

// StopReason returns the last stop_reason seen, if any.
func (t *SSETap) StopReason() string { return t.stopReson }

// ErrorType returns the type of an error event seen in the stream, if any.
func (t *SSETap) ErrorType() string { return t.errType }

// Model returns the model named by message_start.
func (t *SSETap) Model() string { return t.model }

// Events returns how many events were dispatched.
func (t *SSETap) Events() int { return t.events }

// AtEventBoundary reports whether everything written so far ends exactly at
// the end of an event (a blank line), so bytes can be inserted safely.
func (t *SSETap) AtEventBoundary() bool {
	return len(t.line) == 0 && !t.pending
}

// UsageFromJSON extracts usage from a non-streaming Messages response body.
// ok is false when the body has no usage object. It decodes only the
// top-level usage and model values, not the content.
func UsageFromJSON(body []byte) (u Usage, model string, ok bool) {
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return Usage{}, "", false
	}
	for s.i < len(s.b) {
		s.ws()
		if s.eat('}') {
			break
		}
		if s.i >= len(s.b) || s.b[s.i] != '"' { // not JSON: no usage to trust
			return Usage{}, "", false
		}
		kStart := s.i
		s.skipString()
		key := body[kStart:s.i]
		s.ws()
		if !s.eat(':') {
			return Usage{}, "", false
		}
		s.ws()
		vStart := s.i
		s.skipValue()
		val := body[vStart:s.i]
		switch string(key) {
		case `"usage"`:
			var v usageVals
			if !json.Valid(val) || !decodeUsage(val, &v) {
				return Usage{}, "", false
			}
			u.mergeVals(&v)
			ok = true
		case `"model"`:
			model = stringValue(val)
		}
		s.ws()
		if !s.eat(',') {
			break
		}
	}
	if !ok {
		return Usage{}, "", false
	}
	return u, model, true
}

// ErrorTypeFromJSON returns error.type from an Anthropic error envelope.
func ErrorTypeFromJSON(body []byte) string {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Type
}
