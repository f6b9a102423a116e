package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

func (s *Server) miscRoutes(r chi.Router) {
	r.Get("/plugins", s.listPlugins)
	r.Get("/plugins/execute", s.pluginCommands)
	r.Post("/plugins/execute", s.executePlugin)
	// Development utilities of the original: not offered (routes.md §3.2, §3.3, §8.7, §9.8).
	r.HandleFunc("/auth/debug-sms", notFound)
	r.HandleFunc("/auth/debug-sms-config", notFound)
	r.HandleFunc("/websocket", websocketGone)
}

// GET, POST /api/websocket (routes.md §9.8, the WebSocket locator): this server has no WebSocket; the event stream is SSE.
func websocketGone(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found",
		"message": "This server offers no WebSocket; real-time events are served as Server-Sent Events at /api/events"})
}

type pluginCommand struct {
	Command     string `json:"command"`
	Description string `json:"description"`
}

type pluginManifest struct {
	Name        string          `json:"name"`
	Version     string          `json:"version"`
	Description string          `json:"description"`
	Author      string          `json:"author"`
	Commands    []pluginCommand `json:"commands"`
	Directory   string          `json:"directory"`
	Active      bool            `json:"active"`
}

// builtinPlugins are the two community plugins of the original at its last commit (routes.md §9.6), sorted by
// folder as the original listed them.
var builtinPlugins = []pluginManifest{
	{Name: "echo", Version: "1.0.0", Description: "Simple echo plugin that repeats your message",
		Author: "QryptChat Community", Directory: "echo", Active: true,
		Commands: []pluginCommand{{"/echo", "Echo back the provided message"}, {"/help", "Show echo plugin help"}}},
	{Name: "time", Version: "1.0.0", Description: "Look up the current time in any timezone or city",
		Author: "QryptChat Community", Directory: "time", Active: true,
		Commands: []pluginCommand{{"/time", "Get the current time for a timezone or city"}}},
}

// GET /api/plugins: public, a bare array of manifests.
func (s *Server) listPlugins(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, builtinPlugins)
}

// GET /api/plugins/execute.
func (s *Server) pluginCommands(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireUser(w, r, "Unauthorized"); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": []any{}, "helpText": "No plugins are currently loaded.", "pluginCount": 0})
}

// POST /api/plugins/execute {message, context}. The plugins are JavaScript that this server does not run; /echo and
// /time are answered natively with the intended success shape, anything else as the original answered.
func (s *Server) executePlugin(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireUser(w, r, "Unauthorized"); !ok {
		return
	}
	var body struct {
		Message any `json:"message"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	msg, _ := body.Message.(string)
	if strings.TrimSpace(msg) == "" {
		writeError(w, http.StatusBadRequest, "Message is required")
		return
	}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(msg), " ")
	arg = strings.TrimSpace(arg)
	switch cmd {
	case "/echo":
		if arg == "" {
			arg = "Usage: /echo <message>"
		}
		writeJSON(w, http.StatusOK, map[string]any{"response": arg, "isPluginCommand": true})
	case "/help":
		writeJSON(w, http.StatusOK, map[string]any{"response": "Echo plugin: /echo <message> repeats your message.", "isPluginCommand": true})
	case "/time":
		writeJSON(w, http.StatusOK, map[string]any{"response": pluginTime(arg, s.now()), "isPluginCommand": true})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "Command not recognized", "isPluginCommand": false})
	}
}

// pluginTime answers /time for an IANA zone name (UTC when none or unknown).
func pluginTime(zone string, now time.Time) string {
	if zone != "" && len(zone) <= 64 {
		if loc, err := time.LoadLocation(strings.ReplaceAll(zone, " ", "_")); err == nil {
			return "The current time in " + zone + " is " + now.In(loc).Format("Monday, 2 January 2006 15:04 MST")
		}
	}
	return "The current time (UTC) is " + now.UTC().Format("Monday, 2 January 2006 15:04 MST")
}
