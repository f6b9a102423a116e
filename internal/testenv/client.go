package testenv

import "net/http"

// NewClient returns an HTTP client with a transport of its own. Tests must not share http.DefaultTransport: an
// httptest server closing in a parallel test closes that transport's idle connections, which fails another test's
// request in flight ("http: CloseIdleConnections called").
func NewClient() *http.Client { return &http.Client{Transport: &http.Transport{}} }
