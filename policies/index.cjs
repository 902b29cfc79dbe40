// The entry point the Pulumi policy host loads: it require()s the pack directory, and the policies are
// TypeScript ES modules like the rest of the repository, so tsx compiles them as they load.
require('tsx/cjs/api').register();
require('./pack.ts');
