package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
)

// DefaultTelnyxBaseURL is Telnyx's API root.
const DefaultTelnyxBaseURL = "https://api.telnyx.com"

// TelnyxAPIKeyRequired and TelnyxSenderRequired are the configuration errors of [TelnyxSMS] (the original had no
// exact texts for them; it silently skipped the reply).
const (
	TelnyxAPIKeyRequired = "Telnyx API key is required: TELNYX_API_KEY"
	TelnyxSenderRequired = "Either TELNYX_PHONE_NUMBER or TELNYX_MESSAGING_PROFILE_ID must be configured"
)

// TelnyxSMS sends SMS through Telnyx's v2 Messages API. Send validates the configuration on every call.
type TelnyxSMS struct {
	APIKey             string // TELNYX_API_KEY (Bearer)
	FromNumber         string // the receiving number replies go out from
	MessagingProfileID string // optional; used when FromNumber is empty (number pools)
	BaseURL            string // "" = DefaultTelnyxBaseURL
	HTTPClient         *http.Client
}

var _ SMSSender = (*TelnyxSMS)(nil)

// Validate reports the first missing setting (errors.Is(err, ErrNotConfigured)).
func (t *TelnyxSMS) Validate() error {
	if t.APIKey == "" {
		return &configError{TelnyxAPIKeyRequired}
	}
	if t.FromNumber == "" && t.MessagingProfileID == "" {
		return &configError{TelnyxSenderRequired}
	}
	return nil
}

type telnyxSendBody struct {
	From               string `json:"from,omitempty"`
	MessagingProfileID string `json:"messaging_profile_id,omitempty"`
	To                 string `json:"to"`
	Text               string `json:"text"`
}

type telnyxSendAnswer struct {
	Data struct {
		ID string `json:"id"`
		To []struct {
			Status string `json:"status"`
		} `json:"to"`
	} `json:"data"`
}

type telnyxErrors struct {
	Errors []struct {
		Code   string `json:"code"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// Send POSTs JSON {"from","to","text"} (or messaging_profile_id instead of from) to <base>/v2/messages with
// `Authorization: Bearer <APIKey>`. The status is the first recipient's status (e.g. "queued").
func (t *TelnyxSMS) Send(ctx context.Context, to, body string) (SMSResult, error) {
	if err := t.Validate(); err != nil {
		return SMSResult{}, err
	}
	payload := telnyxSendBody{To: to, Text: body, From: t.FromNumber}
	if t.FromNumber == "" {
		payload.MessagingProfileID = t.MessagingProfileID
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return SMSResult{}, &ProviderError{Provider: "Telnyx", Action: "SMS", Message: "invalid request", Err: err}
	}
	req, err := http.NewRequest(http.MethodPost, baseURL(t.BaseURL, DefaultTelnyxBaseURL)+"/v2/messages",
		bytes.NewReader(raw))
	if err != nil {
		return SMSResult{}, &ProviderError{Provider: "Telnyx", Action: "SMS", Message: "invalid request", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+t.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	var ok telnyxSendAnswer
	var fail telnyxErrors
	status, err := doJSON(ctx, httpClient(t.HTTPClient), req, &ok, &fail)
	if err != nil && status == 0 {
		return SMSResult{}, &ProviderError{Provider: "Telnyx", Action: "SMS", Message: transportFailure(ctx), Err: err}
	}
	if err != nil || status < 200 || status > 299 {
		pe := &ProviderError{Provider: "Telnyx", Action: "SMS", Status: status, Message: "HTTP " + strconv.Itoa(status), Err: err}
		if len(fail.Errors) > 0 {
			e := fail.Errors[0]
			pe.Code = e.Code
			if e.Detail != "" {
				pe.Message = e.Detail
			} else if e.Title != "" {
				pe.Message = e.Title
			}
		}
		return SMSResult{}, pe
	}
	res := SMSResult{ID: ok.Data.ID}
	if len(ok.Data.To) > 0 {
		res.Status = ok.Data.To[0].Status
	}
	return res, nil
}
