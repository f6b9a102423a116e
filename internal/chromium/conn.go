package chromium

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// conn is the DevTools protocol over Chromium's pipe: JSON messages, each ended by a NUL byte. Commands carry an id
// and, for a page, the flattened session id; replies come back with the same id, events with a method.
type conn struct {
	w       io.WriteCloser
	wmu     sync.Mutex
	mu      sync.Mutex
	next    int64
	pending map[int64]chan reply
	events  map[string]func(method string, params json.RawMessage)
	err     error // set once the pipe is gone
}

type reply struct {
	result json.RawMessage
	err    error
}

type message struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

// maxMessage bounds one message from the browser (screenshots are the largest).
const maxMessage = 64 << 20

func newConn(w io.WriteCloser, r *bufio.Reader) *conn {
	c := &conn{w: w, pending: map[int64]chan reply{}, events: map[string]func(string, json.RawMessage){}}
	go c.read(r)
	return c
}

func (c *conn) read(r *bufio.Reader) {
	var err error
	for {
		var raw []byte
		raw, err = readUntilNUL(r)
		if err != nil {
			break
		}
		var m message
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				rep := reply{result: m.Result}
				if m.Error != nil {
					rep.err = fmt.Errorf("%s (%d) %s", m.Error.Message, m.Error.Code, m.Error.Data)
				}
				ch <- rep
			}
			continue
		}
		c.mu.Lock()
		h := c.events[m.SessionID]
		c.mu.Unlock()
		if h != nil {
			h(m.Method, m.Params)
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("devtools pipe closed: %w", err)
	for id, ch := range c.pending {
		ch <- reply{err: c.err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

func readUntilNUL(r *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := r.ReadSlice(0)
		out = append(out, chunk...)
		if len(out) > maxMessage {
			return nil, errors.New("devtools message too large")
		}
		if err == nil {
			return out[:len(out)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// onEvent routes the events of one session (a page) to h, called on the reader goroutine.
func (c *conn) onEvent(session string, h func(method string, params json.RawMessage)) {
	c.mu.Lock()
	c.events[session] = h
	c.mu.Unlock()
}

func (c *conn) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	var p json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, err
		}
		p = b
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(message{ID: id, Method: method, SessionID: session, Params: p})
	c.wmu.Lock()
	_, err := c.w.Write(append(b, 0))
	c.wmu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	select {
	case rep := <-ch:
		if rep.err != nil {
			return nil, fmt.Errorf("%s: %w", method, rep.err)
		}
		return rep.result, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *conn) close() { _ = c.w.Close() }
