package supa_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/supa"
)

// TestProfileSentinelsFromRealPostgREST: the "no row" outcomes of the users, settings and nuclear-delete queries
// come out as supa's sentinels against the real PostgREST and row-level security, so that api answers them from its
// one table instead of inspecting rows or codes.
func TestProfileSentinelsFromRealPostgREST(t *testing.T) {
	t.Parallel()
	c := client(t, testenv.SupabaseURL(t), 10*time.Second)
	ctx := context.Background()
	u, other := testenv.NewUser(t), testenv.NewUser(t)
	rest := c.As(u.Token(t, time.Hour))

	p, err := rest.Profile(ctx, u.AuthID)
	if err != nil || p.ID != u.ID || p.Username != u.Username {
		t.Fatalf("Profile = %+v, %v", p, err)
	}
	own, err := rest.OwnRow(ctx)
	if err != nil || own.ID != u.ID || own.PhoneNumber == nil || *own.PhoneNumber != u.Phone || own.HasBackupPin ||
		own.Fields["username"] != u.Username {
		t.Fatalf("OwnRow = %+v, %v", own, err)
	}

	none := testenv.NewAuthUserNoProfile(t)
	nrest := c.As(none.Token(t, time.Hour))
	if _, err := nrest.Profile(ctx, none.AuthID); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("Profile without a row: %v", err)
	}
	if _, err := nrest.OwnRow(ctx); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("OwnRow without a row: %v", err)
	}
	if err := nrest.SetSalt(ctx, none.AuthID, "salt"); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("SetSalt without a row: %v", err)
	}
	if err := nrest.SetRetentionDays(ctx, none.AuthID, 7); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("SetRetentionDays without a row: %v", err)
	}
	bio := "x"
	if _, err := nrest.UpdateProfile(ctx, none.AuthID, supa.ProfileChanges{Bio: &bio, UpdatedAt: time.Now().UTC().Format(time.RFC3339)}); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("UpdateProfile without a row: %v", err)
	}
	// Another user's row is not the caller's to change: row-level security hides it, which reads as no row.
	if err := rest.SetSalt(ctx, other.AuthID, "salt"); !errors.Is(err, supa.ErrNoProfile) {
		t.Errorf("SetSalt on another user's row: %v", err)
	}

	if _, err := rest.UserByIdentifier(ctx, "qryptchat00000000"); !errors.Is(err, supa.ErrUserNotFound) {
		t.Errorf("UserByIdentifier unknown: %v", err)
	}
	if err := rest.SetDisappearing(ctx, "00000000-0000-4000-8000-000000000000", u.ID, 60, "read"); !errors.Is(err, supa.ErrNotParticipant) {
		t.Errorf("SetDisappearing outside the conversation: %v", err)
	}
	// The function's own refusal text, as the real database raises it.
	_, err = rest.DeleteEncryptedData(ctx, other.ID)
	var e *supa.Error
	if !errors.Is(err, supa.ErrDeleteOthersData) || !errors.As(err, &e) || e.Status != http.StatusForbidden {
		t.Errorf("DeleteEncryptedData of another user: %v", err)
	}
}

// TestProfileDuplicate: two users rows for one auth uid (which users_auth_user_id_unique now rules out, but which
// the original's data may hold) are a failure of their own, not the first row.
func TestProfileDuplicate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rest/v1/users" || r.URL.Query().Get("limit") != "2" {
			t.Errorf("request %s", r.URL)
		}
		_, _ = w.Write([]byte(`[{"id":"a","username":"x","display_name":"x"},{"id":"b","username":"y","display_name":"y"}]`))
	}))
	defer srv.Close()
	if _, err := client(t, srv.URL, time.Second).As("tok").Profile(context.Background(), "uid"); !errors.Is(err, supa.ErrDuplicateProfile) {
		t.Errorf("two rows: %v", err)
	}
}

// TestDeleteEncryptedDataRefusals: the nuclear delete's refusals are told apart by the function's exception texts,
// first match first, and an empty answer is a failure of its own.
func TestDeleteEncryptedDataRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		want   error
	}{
		{403, `{"code":"42501","message":"Users can only delete their own data"}`, supa.ErrDeleteOthersData},
		{403, `{"code":"42501","message":"User must be authenticated"}`, supa.ErrDeleteUnauthorized},
		{400, `{"code":"P0001","message":"User not found"}`, supa.ErrDeleteUserNotFound},
		{400, `{"code":"P0001","message":"User must be authenticated; User not found"}`, supa.ErrDeleteUnauthorized},
		{200, `null`, supa.ErrDeleteReturnedEmpty},
		{200, ``, supa.ErrDeleteReturnedEmpty},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/rest/v1/rpc/delete_encrypted_data_only" {
				t.Errorf("path %s", r.URL.Path)
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		_, err := client(t, srv.URL, time.Second).As("tok").DeleteEncryptedData(context.Background(), "00000000-0000-4000-8000-000000000000")
		srv.Close()
		if !errors.Is(err, tc.want) {
			t.Errorf("%d %s: %v, want %v", tc.status, tc.body, err, tc.want)
		}
	}
	// Any other failure is passed on unclassified.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"code":"P0001","message":"Encrypted data delete failed: deadlock"}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := client(t, srv.URL, time.Second).As("tok").DeleteEncryptedData(context.Background(), "00000000-0000-4000-8000-000000000000")
	for _, s := range []error{supa.ErrDeleteOthersData, supa.ErrDeleteUnauthorized, supa.ErrDeleteUserNotFound, supa.ErrDeleteReturnedEmpty} {
		if errors.Is(err, s) {
			t.Errorf("other failure classified as %v", s)
		}
	}
}
