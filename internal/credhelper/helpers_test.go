package credhelper

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// httptestServer starts a test server and returns its URL.
func httptestServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
