// Command devstack holds what the Docker-free local stack needs besides the real Supabase services: the API
// gateway that Kong is in a Supabase project, the stack's well-known development keys in the forms each service
// reads, and ready demo sessions signed in through the real Supabase Auth.
//
// DEVELOPMENT AND TESTS ONLY. The keys are public (internal/devkeys); nothing here belongs in a deployment.
//
//	devstack gateway -addr 127.0.0.1:54321 -auth URL -rest URL -storage URL
//	devstack keys                      NAME=value lines: API keys, JWT secret, Auth's signing keys, JWKS forms
//	devstack test-otps                 the GOTRUE_SMS_TEST_OTP value: demo phones and the test block
//	devstack demo-sessions -supabase URL [-app-url URL] [-env-file F]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// run is main without the process globals, so that every subcommand is testable.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: devstack gateway|keys|test-otps|demo-sessions [flags]")
	}
	switch args[0] {
	case "gateway":
		return runGateway(ctx, args[1:], stderr)
	case "keys":
		return printKeys(stdout)
	case "test-otps":
		_, err := fmt.Fprintln(stdout, testOTPs())
		return err
	case "demo-sessions":
		return runDemoSessions(ctx, args[1:], stdout)
	default:
		return fmt.Errorf("unknown subcommand %q (gateway, keys, test-otps, demo-sessions)", args[0])
	}
}
