// One Jest configuration for the workspace. Test files sit beside the code; the suffix says what they
// touch (STYLE.md 11): *.spec.ts pure or mocked, *.int.spec.ts real PostgreSQL/NATS, *.e2e-spec.ts real
// processes. `npm test` runs all three projects.
const { existsSync, readFileSync } = require('node:fs');
const swc = JSON.parse(readFileSync(`${__dirname}/.swcrc`, 'utf8'));
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = Object.fromEntries(
  Object.entries(compilerOptions.paths).map(([alias, [target]]) => [
    `^${alias.replace('/', '\\/')}$`,
    `<rootDir>/${target}`,
  ]),
);

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { ...swc, swcrc: false }] },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  roots: ['apps', 'libs', 'tests', 'bench', 'tools', 'deploy'].filter((d) => existsSync(`${__dirname}/${d}`)).map((d) => `<rootDir>/${d}`),
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['**/*.spec.ts'], testPathIgnorePatterns: ['\\.int\\.spec\\.ts$', '/node_modules/', '/dist/'] },
    { ...common, displayName: 'integration', testMatch: ['**/*.int.spec.ts'], globals: { __FLEXMIG_PROJECT__: 'integration' }, setupFilesAfterEnv: ['<rootDir>/tools/jest-timeouts.js'] },
    { ...common, displayName: 'e2e', testMatch: ['**/*.e2e-spec.ts'], globals: { __FLEXMIG_PROJECT__: 'e2e' }, setupFilesAfterEnv: ['<rootDir>/tools/jest-timeouts.js'] },
    // the whole fault matrix: only when `npm run faults` (scripts/faults.mjs) asks for it, never in `npm test`
    ...(process.env.FLEXMIG_FAULTS === '1'
      ? [{ ...common, displayName: 'faults', testMatch: ['**/*.faults-spec.ts'], globals: { __FLEXMIG_PROJECT__: 'e2e' }, setupFilesAfterEnv: ['<rootDir>/tools/jest-timeouts.js'] }]
      : []),
  ],
};
