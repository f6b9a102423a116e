package relay

import "net/http"

// isolatedClient has a transport of its own: httptest servers closing in parallel tests close the idle
// connections of http.DefaultTransport, which can fail a request of another test sharing it.
var isolatedClient = &http.Client{Transport: &http.Transport{}}
