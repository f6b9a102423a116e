package middleware

import "net/http"

// isolatedClient has a transport of its own: an httptest server closing in a parallel test closes the idle
// connections of http.DefaultTransport, which can fail a request of another test sharing it
// ("http: CloseIdleConnections called").
var isolatedClient = &http.Client{Transport: &http.Transport{}}
