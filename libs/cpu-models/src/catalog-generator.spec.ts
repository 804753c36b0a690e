import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The committed catalog.json must be exactly what `npm run cpu-catalog` makes from the CPU map shipped in
// libs/cpu-models/data/cpu-map (no input outside the repository, so this runs on a fresh clone).
const repoRoot = resolve(__dirname, '../../..');

describe('catalog generator', () => {
  it('regenerates the committed catalog.json byte for byte from the shipped cpu-map (default input)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cpu-catalog-'));
    try {
      const out = join(dir, 'catalog.json');
      execFileSync(process.execPath, [join(repoRoot, 'tools/generate-cpu-catalog.mjs'), '--out', out], { stdio: 'pipe' });
      expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(__dirname, 'catalog.json'), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
