// patch-storage.cjs DIR VERSION INTEGRITY — points Supabase Storage's pg-boss dependency at an upstream release.
//
// Storage asks for a git-only fork of pg-boss that no package registry serves, so `npm ci` cannot install it here.
// This rewrites the dependency in package.json and in both sections of the v2 lock file to the given upstream
// version and integrity. The lock entry gets no "resolved" address: npm then fetches name@version from the
// configured registry and checks the integrity. The fork differs only in its queue code, which Storage runs only
// with PG_QUEUE_ENABLE=true (off in our stacks).
'use strict';
const fs = require('fs');
const path = require('path');

const [dir, version, integrity] = process.argv.slice(2);
if (!dir || !version || !integrity) {
	console.error('usage: patch-storage.cjs DIR VERSION INTEGRITY');
	process.exit(2);
}

function rewrite(file, edit) {
	const p = path.join(dir, file);
	const json = JSON.parse(fs.readFileSync(p, 'utf8'));
	edit(json);
	fs.writeFileSync(p, JSON.stringify(json, null, 2) + '\n');
}

rewrite('package.json', (pkg) => {
	if (!pkg.dependencies || !pkg.dependencies['pg-boss']) throw new Error('package.json has no pg-boss dependency');
	pkg.dependencies['pg-boss'] = version;
});

rewrite('package-lock.json', (lock) => {
	const root = lock.packages && lock.packages[''];
	if (!root || !root.dependencies || !root.dependencies['pg-boss']) throw new Error('lock has no root pg-boss');
	root.dependencies['pg-boss'] = version;
	const entry = lock.packages['node_modules/pg-boss'];
	if (!entry) throw new Error('lock has no node_modules/pg-boss');
	entry.version = version;
	delete entry.resolved;
	entry.integrity = integrity;
	if (lock.dependencies && lock.dependencies['pg-boss']) {
		const old = lock.dependencies['pg-boss'];
		lock.dependencies['pg-boss'] = { version, integrity, requires: old.requires };
	}
});
console.log(`pg-boss -> ${version}`);
