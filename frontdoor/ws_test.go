package frontdoor

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A minimal RFC 6455 implementation, just enough to prove that upgrades and frames pass through the front door
// in both directions.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

const (
	wsText  = 0x1
	wsClose = 0x8
)

// wsWriteFrame writes one final frame; clients must mask (RFC 6455 §5.3), servers must not.
func wsWriteFrame(w io.Writer, opcode byte, payload []byte, mask bool) error {
	hdr := []byte{0x80 | opcode}
	maskBit := byte(0)
	if mask {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, maskBit|byte(n))
	case n < 1<<16:
		hdr = append(hdr, maskBit|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, maskBit|127), uint64(n))
	}
	data := payload
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		hdr = append(hdr, key[:]...)
		data = make([]byte, len(payload))
		for i, b := range payload {
			data[i] = b ^ key[i%4]
		}
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// wsReadFrame reads one frame (no fragmentation support) and unmasks it; wantMasked enforces the direction rule.
func wsReadFrame(r *bufio.Reader, wantMasked bool) (byte, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frame")
	}
	masked := h[1]&0x80 != 0
	if masked != wantMasked {
		return 0, nil, errors.New("wrong masking for this direction")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, errors.New("frame too large for the test")
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// wsEchoUpstream completes the handshake, greets the client, then echoes each text frame back prefixed "echo: ".
func wsEchoUpstream(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			t.Errorf("upstream got no upgrade: Upgrade=%q Connection=%q", r.Header.Get("Upgrade"), r.Header.Get("Connection"))
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		if r.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("Sec-WebSocket-Version = %q", r.Header.Get("Sec-WebSocket-Version"))
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		_ = wsWriteFrame(brw, wsText, []byte("hello from upstream"), false)
		_ = brw.Flush()
		for range 100 {
			op, payload, err := wsReadFrame(brw.Reader, true)
			if err != nil {
				return
			}
			if op == wsClose {
				_ = wsWriteFrame(brw, wsClose, payload, false)
				_ = brw.Flush()
				return
			}
			_ = wsWriteFrame(brw, wsText, append([]byte("echo: "), payload...), false)
			_ = brw.Flush()
		}
	}
}
