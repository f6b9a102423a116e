# Development entry points. The local stack (PostgreSQL, the real Supabase Auth and Storage, PostgREST 12, a gateway,
# Redis, the QryptChat frontend) is managed by scripts/stack.sh; `make test` starts its own private stack and is what CI runs.
.PHONY: dev test stack-up stack-down stack-status bench compare fmt vet

dev:
	scripts/dev.sh

test:
	scripts/test.sh

stack-up:
	scripts/stack.sh up

stack-down:
	scripts/stack.sh down

stack-status:
	scripts/stack.sh status

# Benchmarks use the dev stack's environment when it is up (make stack-up).
bench:
	if [ -f .stack/env ]; then . ./.stack/env; fi; go test -run='^$$' -bench=. ./...

# The original Node server and suparelay side by side on the orig stack (started when it is not up); see
# bench/compare/run.sh. Example: make compare COMPARE_FLAGS='-members 201 -streams-per-user 5 -runs 2'
compare:
	bench/compare/run.sh $(COMPARE_FLAGS)

fmt:
	go fmt ./...

vet:
	go vet ./...
