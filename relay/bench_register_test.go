package relay

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// benchRegister measures a stream's registration and unregistration (no HTTP, no room load): the part of a
// connect that the cluster-wide stream count adds to.
func benchRegister(b *testing.B, br Broker) {
	ctx := context.Background()
	h := NewHub(br, HubConfig{MaxStreamsPerNode: 1 << 20}, nil, nil)
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(ctx)
	// One other stream of the same user stays open, so unregistering is never the user's last stream here.
	keep, err := h.register("u0")
	if err != nil {
		b.Fatal(err)
	}
	defer h.unregister(keep.s)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		st, err := h.register("u" + strconv.Itoa(i%2))
		if err != nil {
			b.Fatal(err)
		}
		h.unregister(st.s)
	}
}

func BenchmarkRegisterMemory(b *testing.B) {
	br := NewMemoryBroker(MemoryBrokerConfig{})
	defer br.Close()
	benchRegister(b, br)
}

func BenchmarkRegisterRedis(b *testing.B) {
	url := testenv.RedisURL(b)
	prefix := "relaybench:" + testenv.RandomHex(6) + ":"
	br, err := NewRedisBrokerFromURL(url, RedisBrokerConfig{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	defer func() {
		opt, _ := redis.ParseURL(url)
		c := redis.NewClient(opt)
		testenv.DeleteRedisKeys(context.Background(), c, prefix+"*")
		_ = c.Close()
	}()
	benchRegister(b, br)
}
