// Package e2e holds the end-to-end tests of the real QryptChat frontend against suparelay and the real Supabase
// stack: headless Chromium drives the unchanged pages (served by the frontend's own page server behind suparelay's
// front door) through sign-up, chats, files, avatars, settings and sign-out, and every step asserts what the page
// shows. Beside them live other tests that drive whole stacks end to end (the upgrade's rollback test). The tests need
// the local stacks that scripts/stack.sh starts (make test); outside CI they skip without them.
package e2e
