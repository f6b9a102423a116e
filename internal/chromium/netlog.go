package chromium

import (
	"bufio"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strings"
)

// nonLoopback reads a Chromium NetLog (a constants object, then one JSON event per line) and returns the distinct
// destinations that are not loopback: the hosts of URLs requested, names looked up, and addresses connected to. A
// NetLog cut short (the browser killed) is read as far as it goes.
//
// One thing is not an attempt: a UDP socket that is connected but never sends. Chromium's IPv6 reachability check
// connects one to a public address only to ask the kernel for a route; no datagram leaves the machine. UDP
// destinations are therefore reported only for sockets that sent bytes.
func nonLoopback(r io.Reader) ([]string, error) {
	found := map[string]bool{}
	types, sources := map[string]int{}, map[string]int{}
	type udpSocket struct {
		dest string
		sent bool
	}
	udp := map[int]*udpSocket{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(strings.TrimSpace(sc.Text()), ",")
		if strings.HasPrefix(line, `{"constants"`) {
			types, sources = constants(line)
			continue
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev struct {
			Params map[string]any `json:"params"`
			Type   int            `json:"type"`
			Source struct {
				ID   int `json:"id"`
				Type int `json:"type"`
			} `json:"source"`
		}
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		switch {
		case ev.Type == types["TCP_ACCEPT"]:
			continue // a peer of ours, not a destination
		case ev.Source.Type == sources["UDP_SOCKET"] || ev.Source.Type == sources["UDP_CLIENT_SOCKET"]:
			s := udp[ev.Source.ID]
			if s == nil {
				s = &udpSocket{}
				udp[ev.Source.ID] = s
			}
			if ev.Type == types["UDP_BYTES_SENT"] {
				s.sent = true
			}
			if a, _ := ev.Params["address"].(string); a != "" && ev.Type != types["UDP_LOCAL_ADDRESS"] {
				s.dest = a
			}
			continue
		}
		walk(ev.Params, "", found)
	}
	for _, s := range udp {
		if s.sent && !isLoopbackHost(s.dest) {
			found["udp "+s.dest] = true
		}
	}
	out := make([]string, 0, len(found))
	for d := range found {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, sc.Err()
}

// constants extracts the event and source type numbers from the NetLog's constants line. Names it lacks map to
// -1, so that a NetLog without constants matches no special case.
func constants(line string) (events, sources map[string]int) {
	events = pick(line, "logEventTypes", "UDP_LOCAL_ADDRESS", "TCP_ACCEPT", "UDP_BYTES_SENT")
	sources = pick(line, "logSourceType", "UDP_SOCKET", "UDP_CLIENT_SOCKET")
	return events, sources
}

func pick(line, table string, names ...string) map[string]int {
	out := map[string]int{}
	for _, n := range names {
		out[n] = -1
	}
	i := strings.Index(line, `"`+table+`":`)
	if i < 0 {
		return out
	}
	var m map[string]int
	if json.NewDecoder(strings.NewReader(line[i+len(table)+3:])).Decode(&m) != nil {
		return out
	}
	for _, n := range names {
		if v, ok := m[n]; ok {
			out[n] = v
		}
	}
	return out
}

// walk inspects every value of an event's parameters: URLs by their host, and the fields NetLog uses for names and
// addresses ("host", "address", "address_list", "remote_address", "server", …).
func walk(v any, key string, found map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walk(e, k, found)
		}
	case []any:
		for _, e := range x {
			walk(e, key, found)
		}
	case string:
		if u, err := url.Parse(x); err == nil && u.Host != "" && isNetScheme(u.Scheme) {
			// "~notfound" is the resolver rule's rewrite of a blocked name, which is logged itself.
			if u.Host != "~notfound" && !isLoopbackHost(u.Host) {
				found[u.Scheme+"://"+u.Host] = true
			}
			return
		}
		switch key {
		case "host", "hostname", "address", "address_list", "remote_address", "server", "proxy_server":
			if x != "" && x != "~NOTFOUND" && !isLoopbackHost(x) {
				found[key+" "+x] = true
			}
		}
	}
}

func isNetScheme(s string) bool {
	switch s {
	case "http", "https", "ws", "wss", "ftp":
		return true
	}
	return false
}
