// Package archtest holds tests that guard the architecture described in
// docs/ARCHITECTURE.md: every package states its job, and the request hot
// path never grows dependencies on storage, cloud or telemetry clients.
package archtest
