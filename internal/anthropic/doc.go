// Package anthropic holds the parts of the Anthropic Messages API wire format
// the gateway touches: the error envelope, token usage, an incremental SSE
// usage tap and a JSON usage extractor, and a cheap peek at request fields
// (model, stream, max_tokens).
//
// It is a leaf package (standard library only). It never re-encodes a body:
// callers pass bytes through untouched and only observe them here.
package anthropic
