package middleware

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/authsession"
	"github.com/qryptchat/suparelay/internal/rediskv"
)

// SharedStore is a small TTL key-value store shared by all suparelay nodes, used to make a refresh-token exchange
// happen once across the cluster (auth.md §7). Values are opaque bytes; keys are already namespaced by the caller.
// Implementations must be safe for concurrent use. NewRedisSharedStore is the production one.
type SharedStore interface {
	// Get returns the value and true, or false when the key does not exist (or expired).
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// SetNX stores value only if key does not exist, reporting whether it did.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Set stores value unconditionally.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Del removes key (no error when absent).
	Del(ctx context.Context, key string) error
	// DelIfValue removes key only while it still holds value (a lock released by its holder only: after expiry
	// and a new holder, it does nothing).
	DelIfValue(ctx context.Context, key string, value []byte) error
}

// RedisSharedStore is a SharedStore on Redis (internal/rediskv), every key under a prefix.
type RedisSharedStore struct{ kv rediskv.Store }

var _ SharedStore = (*RedisSharedStore)(nil)

// NewRedisSharedStore returns a SharedStore on c whose keys all start with prefix (e.g. "suparelay:auth:").
func NewRedisSharedStore(c redis.UniversalClient, prefix string) *RedisSharedStore {
	return &RedisSharedStore{kv: rediskv.New(c, prefix)}
}

func (s *RedisSharedStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return s.kv.Get(ctx, key)
}

func (s *RedisSharedStore) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return s.kv.SetNX(ctx, key, value, ttl)
}

func (s *RedisSharedStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.kv.Set(ctx, key, value, ttl)
}

func (s *RedisSharedStore) Del(ctx context.Context, key string) error { return s.kv.Del(ctx, key) }

func (s *RedisSharedStore) DelIfValue(ctx context.Context, key string, value []byte) error {
	_, err := s.kv.DelIfValue(ctx, key, value)
	return err
}

// MemorySharedStore is an in-process SharedStore, for a single node and for tests. Expired keys are purged lazily.
type MemorySharedStore struct {
	mu sync.Mutex
	m  map[string]memValue
}

type memValue struct {
	v     []byte
	until time.Time
}

var _ SharedStore = (*MemorySharedStore)(nil)

// NewMemorySharedStore returns an empty in-memory store.
func NewMemorySharedStore() *MemorySharedStore { return &MemorySharedStore{m: map[string]memValue{}} }

func (s *MemorySharedStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || time.Now().After(e.until) {
		return nil, false, nil
	}
	return append([]byte(nil), e.v...), true, nil
}

func (s *MemorySharedStore) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if e, ok := s.m[key]; ok && now.Before(e.until) {
		return false, nil
	}
	s.purge(now)
	s.m[key] = memValue{v: append([]byte(nil), value...), until: now.Add(ttl)}
	return true, nil
}

func (s *MemorySharedStore) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.purge(now)
	s.m[key] = memValue{v: append([]byte(nil), value...), until: now.Add(ttl)}
	return nil
}

func (s *MemorySharedStore) Del(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *MemorySharedStore) DelIfValue(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && time.Now().Before(e.until) && string(e.v) == string(value) {
		delete(s.m, key)
	}
	return nil
}

// purge drops expired keys once the map grows, bounding memory without a background goroutine.
func (s *MemorySharedStore) purge(now time.Time) {
	if len(s.m) < 1024 {
		return
	}
	for k, e := range s.m {
		if now.After(e.until) {
			delete(s.m, k)
		}
	}
}

// sharedPayload is what goes into the shared store for one exchange.
type sharedPayload struct {
	Rejected bool            `json:"rejected,omitempty"`
	Session  json.RawMessage `json:"session,omitempty"`
}

// sharedCipher derives the AES-256-GCM key that protects a shared result from the OLD refresh token, so whoever can
// read the store but does not hold that token learns nothing (the result contains a live session). The lookup key
// is SHA-256 of the token; the encryption key uses a separate domain string, so one does not reveal the other.
func sharedCipher(refreshToken string) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte("suparelay refresh result v1\x00" + refreshToken))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (rf *refresher) storeShared(ctx context.Context, key, refreshToken string, sess *authsession.Session, rerr error) error {
	p := sharedPayload{Rejected: rerr != nil}
	if sess != nil {
		p.Session = sess.Raw
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return err
	}
	aead, err := sharedCipher(refreshToken)
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := aead.Seal(nonce, nonce, plain, []byte(key))
	return rf.shared.Set(ctx, sharedKeyResult+key, sealed, refreshResultTTL)
}

// sharedResult fetches and decrypts another node's result. A value that does not decrypt is treated as absent.
func (rf *refresher) sharedResult(ctx context.Context, key, refreshToken string) (memResult, bool, error) {
	b, ok, err := rf.shared.Get(ctx, sharedKeyResult+key)
	if err != nil || !ok {
		return memResult{}, false, err
	}
	aead, err := sharedCipher(refreshToken)
	if err != nil {
		return memResult{}, false, err
	}
	if len(b) < aead.NonceSize() {
		return memResult{}, false, nil
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(key))
	if err != nil {
		return memResult{}, false, nil
	}
	var p sharedPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return memResult{}, false, nil
	}
	if p.Rejected {
		return memResult{rejected: fmt.Errorf("%w (by another node's exchange)", authsession.ErrRejected)}, true, nil
	}
	sess, err := authsession.Parse(p.Session)
	if err != nil {
		return memResult{}, false, nil
	}
	return memResult{sess: sess}, true, nil
}
