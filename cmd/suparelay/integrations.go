package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qryptchat/suparelay/notify"
	"github.com/qryptchat/suparelay/webhooks"
)

// integrations are the third-party senders and the webhook deliverer, chosen by configuration.
type integrations struct {
	sms         notify.SMSSender
	telnyxReply notify.SMSSender
	mailer      notify.Mailer
	webhooks    *webhooks.Deliverer
}

// newIntegrations builds the senders and the webhook deliverer (on hookStore; nil = in memory); a provider that is
// selected but incompletely configured is a startup error, so a deployment does not discover it at the first SMS.
func newIntegrations(cfg Config, log *slog.Logger, reg prometheus.Registerer, hookStore webhooks.Store) (integrations, error) {
	var in integrations
	switch cfg.SMSProvider {
	case "twilio":
		t := &notify.TwilioSMS{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken,
			MessagingServiceSID: cfg.TwilioMessagingSID, FromNumber: cfg.TwilioPhoneNumber}
		if err := t.Validate(); err != nil {
			return in, fmt.Errorf("SMS_PROVIDER=twilio: %w", err)
		}
		in.sms = t
	case "telnyx":
		t := &notify.TelnyxSMS{APIKey: cfg.TelnyxAPIKey, FromNumber: cfg.TelnyxPhoneNumber}
		if err := t.Validate(); err != nil {
			return in, fmt.Errorf("SMS_PROVIDER=telnyx: %w", err)
		}
		in.sms = t
	default:
		in.sms = notify.LogSMS{Logger: log}
	}
	if cfg.TelnyxAPIKey != "" && cfg.TelnyxPhoneNumber != "" {
		in.telnyxReply = &notify.TelnyxSMS{APIKey: cfg.TelnyxAPIKey, FromNumber: cfg.TelnyxPhoneNumber}
	}
	if cfg.TelnyxPublicKey != "" {
		if _, err := notify.ParseEd25519PublicKey(cfg.TelnyxPublicKey); err != nil {
			return in, fmt.Errorf("TELNYX_PUBLIC_KEY: %w", err)
		}
	}
	if len(cfg.AlertEmailTo) > 0 {
		m := &notify.Mailgun{APIKey: cfg.MailgunAPIKey, Domain: cfg.MailgunDomain, From: cfg.AlertEmailFrom}
		if err := m.Validate(); err != nil {
			return in, fmt.Errorf("ALERT_EMAIL_TO needs Mailgun: %w", err)
		}
		in.mailer = m
	}
	if cfg.WebhookSigningSecret == "" {
		log.Warn("webhook delivery is off: set WEBHOOK_SIGNING_SECRET to deliver stored webhooks")
		return in, nil
	}
	wcfg := webhooks.Config{SigningSecret: cfg.WebhookSigningSecret, AllowPrivate: cfg.WebhookAllowPrivate,
		Store: hookStore, Registerer: reg, Logger: log}
	if hookStore == nil {
		log.Info("webhook deliveries are kept in memory: set REDIS_URL to keep them across restarts and nodes")
	}
	if cfg.WebhookAllowPrivate {
		log.Warn("WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach private and loopback addresses")
	}
	d, err := webhooks.New(wcfg)
	if err != nil {
		return in, fmt.Errorf("webhooks: %w", err)
	}
	in.webhooks = d
	return in, nil
}
