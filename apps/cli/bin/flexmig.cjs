#!/usr/bin/env node
'use strict';
// `npx flexmig …` (the package's bin): runs the built CLI, or says how to build it.
const { existsSync } = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '../../../dist/apps/cli/main.js');
if (!existsSync(main)) {
  console.error(`flexmig: ${main} is missing: run \`npm run build\` first`);
  process.exit(1);
}
require(main);
