package notify

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// DefaultTwilioBaseURL is Twilio's REST API root.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// Exact configuration error texts of routes.md §9.3; the route answers 500 with them.
const (
	TwilioCredentialsRequired = "Twilio credentials are required: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
	TwilioSenderRequired      = "Either TWILIO_PHONE_NUMBER or TWILIO_MESSAGE_SERVICE_SID must be configured"
)

// TwilioSMS sends SMS through Twilio's Messages API. The zero value is usable only after the fields are set; Send
// validates the configuration on every call (returning the contract's exact texts), so a route can be wired with a
// half-configured sender and still answer the way the original did.
type TwilioSMS struct {
	AccountSID          string // TWILIO_ACCOUNT_SID
	AuthToken           string // TWILIO_AUTH_TOKEN
	MessagingServiceSID string // TWILIO_MESSAGE_SERVICE_SID; preferred over FromNumber when both are set
	FromNumber          string // TWILIO_PHONE_NUMBER
	BaseURL             string // "" = DefaultTwilioBaseURL; tests point it at a fake
	HTTPClient          *http.Client
}

var _ SMSSender = (*TwilioSMS)(nil)

// Validate reports the first missing setting with the contract's text (errors.Is(err, ErrNotConfigured)).
func (t *TwilioSMS) Validate() error {
	if t.AccountSID == "" || t.AuthToken == "" {
		return &configError{TwilioCredentialsRequired}
	}
	if t.MessagingServiceSID == "" && t.FromNumber == "" {
		return &configError{TwilioSenderRequired}
	}
	return nil
}

// twilioMessage is the part of Twilio's Message resource we read.
type twilioMessage struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// twilioError is Twilio's error document.
type twilioError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Send POSTs the form To/Body plus MessagingServiceSid or From to
// <base>/2010-04-01/Accounts/<sid>/Messages.json with HTTP basic auth (account SID, auth token).
func (t *TwilioSMS) Send(ctx context.Context, to, body string) (SMSResult, error) {
	if err := t.Validate(); err != nil {
		return SMSResult{}, err
	}
	form := url.Values{"To": {to}, "Body": {body}}
	if t.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", t.MessagingServiceSID)
	} else {
		form.Set("From", t.FromNumber)
	}
	endpoint := baseURL(t.BaseURL, DefaultTwilioBaseURL) + "/2010-04-01/Accounts/" +
		url.PathEscape(t.AccountSID) + "/Messages.json"
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return SMSResult{}, &ProviderError{Provider: "Twilio", Action: "SMS", Message: "invalid request", Err: err}
	}
	req.SetBasicAuth(t.AccountSID, t.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	var ok twilioMessage
	var fail twilioError
	status, err := doJSON(ctx, httpClient(t.HTTPClient), req, &ok, &fail)
	if err != nil && status == 0 {
		return SMSResult{}, &ProviderError{Provider: "Twilio", Action: "SMS", Message: transportFailure(ctx), Err: err}
	}
	if err != nil || status < 200 || status > 299 {
		msg := fail.Message
		if msg == "" {
			msg = "HTTP " + strconv.Itoa(status)
		}
		pe := &ProviderError{Provider: "Twilio", Action: "SMS", Status: status, Message: msg, Err: err}
		if fail.Code != 0 {
			pe.Code = strconv.Itoa(fail.Code)
		}
		return SMSResult{}, pe
	}
	return SMSResult{ID: ok.SID, Status: ok.Status}, nil
}
