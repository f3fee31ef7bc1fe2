// Lists the largest source files and functions under src/ (tests left out), for
// restructuring notes: `node scripts/largest.mjs [count]`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const count = Number(process.argv[2] ?? 15);
const root = new URL('../src', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) files.push(path);
  }
})(root);

const fileRows = [];
const fnRows = [];
for (const path of files) {
  const text = readFileSync(path, 'utf8');
  const name = relative(root, path);
  fileRows.push([text.split('\n').length, name]);
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const visit = (node, owner) => {
    let label = owner;
    if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node))
      label = node.name?.getText() ?? '(anonymous)';
    else if (
      ts.isVariableDeclaration(node) &&
      node.initializer &&
      (ts.isArrowFunction(node.initializer) || ts.isFunctionExpression(node.initializer))
    )
      label = node.name.getText();
    if (
      label !== owner &&
      (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isVariableDeclaration(node))
    ) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      fnRows.push([end - start + 1, `${name}:${start + 1} ${label}`]);
    }
    ts.forEachChild(node, (child) => visit(child, label));
  };
  visit(source, '');
}
const show = (title, rows) => {
  console.log(`${title}`);
  for (const [n, what] of rows.sort((a, b) => b[0] - a[0]).slice(0, count))
    console.log(`${String(n).padStart(6)}  ${what}`);
};
show('Largest files (lines)', fileRows);
show('Largest functions (lines)', fnRows);
