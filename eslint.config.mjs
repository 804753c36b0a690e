// ESLint for the workspace: typescript-eslint's recommended rules (no type information, so a lint run
// stays fast) plus the module boundaries of STYLE.md ("Shape of the workspace"), which Nx enforces from
// the projects' tags (project.json):
//   type:app        deployables; import libraries, never another app
//   type:infra      NATS, PostgreSQL, Nest plumbing (messaging, persistence, service-kit)
//   type:testing    test support (testing): anything but an app
//   type:util       small pure helpers every layer may use (timing): nothing of ours
//   type:domain     pure logic (saga, cpu-models, migration-model): contracts, utils and other domain libs only
//   type:contracts  the wire schemas: nothing of ours but contracts
// The pure ones (domain, contracts, util) may not import NestJS, a transport, a database driver or,
// outside their tests, Node's I/O modules: clock, ids and data come in as arguments (STYLE.md 5).
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const pureTags = ['type:domain', 'type:contracts', 'type:util'];

// Packages a pure library must not reach for (Nx matches them against the npm packages in the graph).
const impurePackages = ['@nestjs/*', 'nats', '@nats-io/*', 'typeorm', 'pg', 'express', 'prom-client', 'testcontainers'];

// Node's I/O modules, bare or `node:`-prefixed, with subpaths (fs/promises). Not npm packages, so Nx's
// bannedExternalImports cannot see them: no-restricted-imports does, on the pure libraries' own files
// (found by tag below; their tests may read fixtures and spawn the generator).
const nodeIo = ['fs', 'net', 'tls', 'http', 'https', 'http2', 'dgram', 'dns', 'child_process', 'cluster', 'worker_threads', 'readline', 'inspector', 'os'];
const nodeIoImport = `^(node:)?(${nodeIo.join('|')})(/.*)?$`;

const projectsTagged = (tags) =>
  ['apps', 'libs'].flatMap((kind) =>
    readdirSync(path.join(root, kind))
      .filter((name) => existsSync(path.join(root, kind, name, 'project.json')))
      .filter((name) => JSON.parse(readFileSync(path.join(root, kind, name, 'project.json'), 'utf8')).tags?.some((t) => tags.includes(t)))
      .map((name) => `${kind}/${name}`),
  );
const testFiles = ['**/*.spec.ts', '**/*.e2e-spec.ts', '**/e2e/**', '**/test-helpers.ts', '**/test-params.ts', '**/test-kit.ts'];

export default tseslint.config(
  { ignores: ['**/dist', '**/node_modules', '**/.nx', '**/coverage'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:contracts', 'type:domain', 'type:infra', 'type:util', 'type:testing'] },
            // testing is for the specs beside the code (the rule does not tell spec files from the rest)
            { sourceTag: 'type:infra', onlyDependOnLibsWithTags: ['type:contracts', 'type:domain', 'type:infra', 'type:util', 'type:testing'] },
            { sourceTag: 'type:testing', onlyDependOnLibsWithTags: ['type:contracts', 'type:domain', 'type:infra', 'type:util', 'type:testing'] },
            { sourceTag: 'type:util', onlyDependOnLibsWithTags: [], bannedExternalImports: impurePackages },
            { sourceTag: 'type:domain', onlyDependOnLibsWithTags: ['type:contracts', 'type:domain', 'type:util'], bannedExternalImports: impurePackages },
            { sourceTag: 'type:contracts', onlyDependOnLibsWithTags: ['type:contracts'], bannedExternalImports: impurePackages },
          ],
        },
      ],
      // `_`-prefixed names are deliberately unused (a parameter kept for its position, a destructured rest).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // a closure made before the one assignment may read the variable later; `const` cannot say that
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // tests dig into JSON replies of every shape; the assertion is the type check there
    files: testFiles,
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: projectsTagged(pureTags).map((p) => `${p}/**/*.ts`),
    ignores: testFiles,
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: nodeIoImport, message: 'a pure library does no I/O: take the data, clock or ids as arguments (STYLE.md 5)' }] },
      ],
    },
  },
  {
    // CommonJS configuration files (jest.config.js): require is how they import
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
