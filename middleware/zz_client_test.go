package middleware

import "github.com/qryptchat/suparelay/internal/testenv"

// isolatedClient: see testenv.NewClient.
var isolatedClient = testenv.NewClient()
