#!/usr/bin/env node
// Fails when two folders of src/ import each other, directly or around a loop. dependency-cruiser's rules see
// cycles between modules only: features/mailboxes/service.ts -> features/requests/service.ts and
// features/requests/repo.ts -> features/mailboxes/service.ts form no module cycle, yet the two features can
// no longer be read, tested or removed one without the other. So this collapses every module to its folder
// (src/<top>/, and src/features/<name>/ for each feature) and looks for cycles in that smaller graph.
//
//   node scripts/folder-cycles.mjs                  cruises src/ with .dependency-cruiser.cjs itself
//   depcruise src --output-type json | node scripts/folder-cycles.mjs -    reads that JSON from stdin
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

function cruiseResult() {
  if (process.argv[2] === '-') return JSON.parse(readFileSync(0, 'utf8'));
  const bin = path.join(root, 'node_modules', '.bin', 'depcruise');
  const args = ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'];
  try {
    return JSON.parse(execFileSync(bin, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }));
  } catch (err) {
    // depcruise exits non-zero when a rule is broken but still writes the whole graph; the rules are its
    // own step in `npm run lint`, this script only judges folders.
    if (err && typeof err.stdout === 'string' && err.stdout.startsWith('{')) return JSON.parse(err.stdout);
    throw err;
  }
}

/** src/kernel/errors.ts -> src/kernel/; src/features/requests/service.ts -> src/features/requests/. */
export function folderOf(file) {
  const parts = file.split('/');
  if (parts[0] !== 'src' || parts.length < 3) return undefined;
  if (parts[1] === 'features' && parts.length > 3) return `src/features/${parts[2]}/`;
  return `src/${parts[1]}/`;
}

/** Folder -> folder it imports -> the module imports that make it so (every one is named in the message). */
function folderGraph(modules) {
  const graph = new Map();
  for (const m of modules) {
    const from = folderOf(m.source);
    if (!from) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    for (const dep of m.dependencies) {
      const to = folderOf(dep.resolved);
      if (!to || to === from) continue;
      const edges = graph.get(from);
      if (!edges.has(to)) edges.set(to, new Set());
      edges.get(to).add(`${m.source} -> ${dep.resolved}`);
    }
  }
  return graph;
}

/** Tarjan's strongly connected components: every component of more than one folder is a cycle. */
function tangles(graph) {
  let next = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** One shortest loop through `start` inside its component, as the folders in order. */
function loopThrough(graph, component, start) {
  const inside = new Set(component);
  const cameFrom = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const loop = [v];
        while (cameFrom.get(loop[0]) !== undefined) loop.unshift(cameFrom.get(loop[0]));
        return [...loop, start];
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

const graph = folderGraph(cruiseResult().modules);
const cycles = tangles(graph);
if (cycles.length === 0) {
  console.log(`folder-cycles: no cycles between the ${graph.size} folders of src/`);
} else {
  for (const component of cycles) {
    console.error(`folders that import each other: ${component.join(', ')}`);
    // The shortest loop through each folder of the tangle, each loop once: every import to undo is named.
    const shown = new Set();
    for (const start of component) {
      const loop = loopThrough(graph, component, start);
      const key = [...loop.slice(0, -1)].sort().join(' ');
      if (shown.has(key)) continue;
      shown.add(key);
      console.error(`  cycle: ${loop.join(' -> ')}`);
      for (let i = 0; i + 1 < loop.length; i += 1) {
        for (const edge of graph.get(loop[i]).get(loop[i + 1])) console.error(`    ${edge}`);
      }
    }
  }
  console.error(`folder-cycles: ${cycles.length} cycle(s) between folders; imports must point one way only`);
  process.exitCode = 1;
}
