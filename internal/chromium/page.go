package chromium

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Page is one tab in its own browser context.
type Page struct {
	b       *Browser
	session string
	target  string

	mu      sync.Mutex
	console []string // console messages, exceptions and browser log entries, in order
	dialogs []string
}

// maxConsole bounds what a page's console can make the test hold.
const maxConsole = 5000

func (p *Page) event(method string, params json.RawMessage) {
	var line string
	switch method {
	case "Runtime.consoleAPICalled":
		var ev struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &ev)
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = "console." + ev.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		var ev struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &ev)
		line = "exception: " + ev.Details.Text + " " + ev.Details.Exception.Description
	case "Log.entryAdded":
		var ev struct {
			Entry struct {
				Level, Source, Text, URL string
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &ev)
		line = "log." + ev.Entry.Level + " (" + ev.Entry.Source + "): " + ev.Entry.Text + " " + ev.Entry.URL
	case "Page.javascriptDialogOpening":
		var ev struct {
			Type, Message string
		}
		_ = json.Unmarshal(params, &ev)
		p.mu.Lock()
		p.dialogs = append(p.dialogs, ev.Type+": "+ev.Message)
		p.mu.Unlock()
		line = "dialog " + ev.Type + ": " + ev.Message
		// Answer from another goroutine: this one delivers the reply.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = p.Call(ctx, "Page.handleJavaScriptDialog", map[string]any{"accept": true})
		}()
	default:
		return
	}
	p.mu.Lock()
	if len(p.console) < maxConsole {
		p.console = append(p.console, time.Now().Format("15:04:05.000 ")+line)
	}
	p.mu.Unlock()
}

// Console returns what the page logged so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Dialogs returns the alert/confirm/prompt dialogs the page opened (each was accepted).
func (p *Page) Dialogs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dialogs...)
}

// Call sends a DevTools command to this page.
func (p *Page) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	return p.b.conn.call(ctx, p.session, method, params)
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	raw, err := p.Call(ctx, "Page.navigate", map[string]any{"url": url})
	if err != nil {
		return err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	_ = json.Unmarshal(raw, &nav)
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate %s: %s", url, nav.ErrorText)
	}
	return p.WaitFor(ctx, `document.readyState === 'complete'`, 30*time.Second)
}

// Eval evaluates a JavaScript expression (awaiting it when it is a promise) and decodes its value into out (nil:
// discarded). A thrown exception is an error carrying its message.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	raw, err := p.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true,
		"awaitPromise": true, "userGesture": true})
	if err != nil {
		return err
	}
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("javascript: %s %s", res.Exception.Text, res.Exception.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// ErrTimeout is returned by WaitFor when the condition never held.
var ErrTimeout = errors.New("condition not met in time")

// WaitFor polls a JavaScript condition until it is truthy or timeout passes. A condition that is a promise (e.g. a
// fetch) is awaited, so that its value counts, not the promise object. Exceptions and rejections while polling count
// as false (the page may be between navigations).
func (p *Page) WaitFor(ctx context.Context, cond string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var ok bool
		err := p.Eval(ctx, "(async () => !!(await ("+cond+")))()", &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%w: %s (last error: %v)", ErrTimeout, cond, last)
			}
			return fmt.Errorf("%w: %s", ErrTimeout, cond)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Screenshot writes a PNG of the page to path.
func (p *Page) Screenshot(ctx context.Context, path string) error {
	raw, err := p.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return err
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(raw, &shot); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// SetExtraHeaders sends these headers with every request of the page (e.g. X-Forwarded-For, to give each simulated
// user its own client address behind a trusted proxy).
func (p *Page) SetExtraHeaders(ctx context.Context, h map[string]string) error {
	_, err := p.Call(ctx, "Network.setExtraHTTPHeaders", map[string]any{"headers": h})
	return err
}
