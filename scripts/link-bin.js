#!/usr/bin/env node
// Links node_modules/.bin/walletd to this repository's CLI, so `npx walletd <command>` runs the
// local build from the repository root (npm links the bins of dependencies, not the root's own).
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'walletd');
const target = join(root, 'bin', 'walletd.js');
mkdirSync(binDir, { recursive: true });
rmSync(link, { force: true });
symlinkSync(relative(binDir, target), link);
chmodSync(target, 0o755);
