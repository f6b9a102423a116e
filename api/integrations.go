package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/notify"
	"github.com/qryptchat/suparelay/supa"
)

func (s *Server) integrationRoutes(r chi.Router) {
	r.Post("/sms/send-notification", s.sendNotification)
	r.Get("/webhooks/telnyx/sms", s.telnyxHealth)
	r.Post("/webhooks/telnyx/sms", s.telnyxInbound)
}

// maxSMSBody is the longest text /api/sms/send-notification sends (ten concatenated SMS segments).
const maxSMSBody = 1600

// POST /api/sms/send-notification (routes.md §9.3). The original was an open SMS relay; now only a verified JWT
// whose role is service_role may use it (a backend job, never a browser).
func (s *Server) sendNotification(w http.ResponseWriter, r *http.Request) {
	tok, ok := middleware.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	claims, err := s.verifier.VerifyAny(r.Context(), tok)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	if claims.Role != "service_role" {
		writeError(w, http.StatusForbidden, "Forbidden")
		return
	}
	var body struct {
		PhoneNumber any `json:"phoneNumber"`
		Message     any `json:"message"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	phone, _ := body.PhoneNumber.(string)
	msg, _ := body.Message.(string)
	if phone == "" || msg == "" {
		writeError(w, http.StatusBadRequest, "Phone number and message are required")
		return
	}
	if !e164.MatchString(phone) {
		badPhone(w)
		return
	}
	if len([]rune(msg)) > maxSMSBody {
		writeError(w, http.StatusBadRequest, "Message is too long")
		return
	}
	res, err := s.sms.Send(r.Context(), phone, msg)
	if err != nil {
		var pe *notify.ProviderError
		switch {
		case errors.Is(err, notify.ErrNotConfigured):
			writeError(w, http.StatusInternalServerError, err.Error())
		case errors.As(err, &pe):
			writeError(w, http.StatusInternalServerError, pe.Error())
		default:
			s.log.ErrorContext(r.Context(), "send-notification failed", "err", err)
			writeError(w, http.StatusInternalServerError, "Twilio SMS failed: provider unreachable")
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "messageId": res.ID, "status": res.Status})
}

// GET /api/webhooks/telnyx/sms (routes.md §9.5): the provider's health probe.
func (s *Server) telnyxHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "healthy", "service": "telnyx-sms-webhook",
		"timestamp": s.now().UTC().Format("2006-01-02T15:04:05.000Z")})
}

// telnyxMaxSkew is how far a signed timestamp may be from now (replays older than this are refused).
const telnyxMaxSkew = 5 * time.Minute

// Replies to the sender of an inbound code (routes.md §9.5).
const (
	replyOK      = "Verification successful! You can now use QryptChat."
	replyInvalid = "Invalid or expired code. Please try again."
	replyError   = "Verification failed. Please try again."
)

// POST /api/webhooks/telnyx/sms (routes.md §9.5): an inbound SMS carrying a one-time code, verified at Supabase
// Auth. Every request must carry a valid Ed25519 signature over "<timestamp>|<body>" from the configured key and a
// fresh timestamp.
func (s *Server) telnyxInbound(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	if s.telnyxKey == "" || notify.VerifyTelnyxSignature(s.telnyxKey, r.Header.Get("telnyx-signature-ed25519"),
		r.Header.Get("telnyx-timestamp"), raw, s.now(), telnyxMaxSkew) != nil {
		s.log.WarnContext(r.Context(), "telnyx webhook: signature refused", "configured", s.telnyxKey != "")
		writeError(w, http.StatusUnauthorized, "Invalid signature")
		return
	}
	var ev struct {
		Data struct {
			EventType string `json:"event_type"`
			Payload   struct {
				From struct {
					PhoneNumber string `json:"phone_number"`
				} `json:"from"`
				Text *string `json:"text"`
			} `json:"payload"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		writeError(w, http.StatusBadRequest, "Webhook processing failed")
		return
	}
	s.alertInbound(raw)
	if ev.Data.EventType != "message.received" {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "reason": "not_message_received_event"})
		return
	}
	from := ev.Data.Payload.From.PhoneNumber
	if from == "" || ev.Data.Payload.Text == nil {
		writeError(w, http.StatusBadRequest, "Missing required fields")
		return
	}
	code := strings.TrimSpace(*ev.Data.Payload.Text)
	if !sixDigits.MatchString(code) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "reason": "invalid_otp_format"})
		return
	}
	sess, err := s.supa.VerifyOTP(r.Context(), from, code)
	if err != nil {
		if kind := supa.AuthErrorKind(err); kind == supa.AuthRefused || kind == supa.AuthRateLimited {
			s.reply(r.Context(), from, replyInvalid)
			_, body := otpFailure(err)
			msg, _ := body["error"].(string)
			writeJSON(w, http.StatusOK, map[string]string{"status": "otp_verification_failed", "error": msg})
			return
		}
		s.log.ErrorContext(r.Context(), "telnyx webhook: verify failed", "err", err)
		s.reply(r.Context(), from, replyError)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"status": "error", "error": "Verification failed"})
		return
	}
	s.reply(r.Context(), from, replyOK)
	writeJSON(w, http.StatusOK, map[string]string{"status": "success", "message": "OTP verified successfully", "userId": sess.UserID()})
}

// reply texts the sender back through the configured reply sender, if any; failures are logged.
func (s *Server) reply(ctx context.Context, to, text string) {
	if s.telnyxReply == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.telnyxReply.Send(ctx, to, text); err != nil {
		s.log.WarnContext(ctx, "telnyx webhook: reply failed", "err", err)
	}
}

// alertInbound e-mails the raw inbound payload to the configured alert address. Opt-in only: the payload contains
// one-time codes, so forwarding it by default (as the original did) leaked them to a mailbox.
func (s *Server) alertInbound(raw []byte) {
	if s.alertMailer == nil || len(s.alertTo) == 0 {
		return
	}
	s.goBackground("alert e-mail", func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := s.alertMailer.SendEmail(ctx, notify.Email{To: s.alertTo, Subject: "QryptChat: inbound SMS webhook", Text: string(raw)})
		if err != nil {
			s.log.Warn("telnyx webhook: alert e-mail failed", "err", err)
		}
	})
}
