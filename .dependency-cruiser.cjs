// The import direction of src/ (ARCHITECTURE.md has the map): each folder names what it may import, and
// `npm run lint` fails on an import that goes the other way. Folders lower in the list never import higher ones:
//
//   app          wiring only: may import everything
//   cli, http    the two front doors: features and below
//   features     the services (features/<name>/), and each other where no folder cycle forms
//   intake       the round: notify, connectors, oauth, mail, store, kernel
//   notify       alerts and the outbox: connectors, oauth, mail, store, kernel
//   connectors   the mailbox protocols: oauth, kernel
//   oauth        tokens: kernel
//   mail         the pure stages: store, kernel
//   store        the database and blobs: kernel
//   kernel       errors, env, logger, limits: nothing of ours
//
// Type-only imports count the same as value imports (tsPreCompilationDeps below): a type is part of a
// folder's contract, and a type imported upward is how a value import upward starts.
// Cycles between folders (features/mailboxes <-> features/requests) are checked by scripts/folder-cycles.mjs,
// which reads this tool's JSON; the rules here can only see cycles between modules.

/** Everything of ours except the folders named: the `to` of a "may import only these" rule. */
function outside(...folders) {
  return { path: '^src/', pathNot: `^src/(${folders.join('|')})/` };
}

/** One rule per folder: what it may import of ours, all else is an upward (or sideways) import. */
function layer(folder, ...allowed) {
  return {
    name: `${folder.replace('/', '-')}-imports-only-${allowed.length ? allowed.join('-') : 'itself'}`,
    comment: `src/${folder}/ may import only ${allowed.length ? allowed.map((f) => `src/${f}/`).join(', ') : 'itself'} of ours.`,
    severity: 'error',
    from: { path: `^src/${folder}/` },
    to: outside(folder, ...allowed),
  };
}

module.exports = {
  forbidden: [
    layer('kernel'),
    layer('store', 'kernel'),
    layer('mail', 'store', 'kernel'),
    layer('oauth', 'kernel'),
    layer('connectors', 'oauth', 'kernel'),
    layer('notify', 'connectors', 'oauth', 'mail', 'store', 'kernel'),
    layer('intake', 'notify', 'connectors', 'oauth', 'mail', 'store', 'kernel'),
    layer('features', 'intake', 'notify', 'connectors', 'oauth', 'mail', 'store', 'kernel'),
    // cli/program.ts opens the runtime (app/) and starts the HTTP server (http/): it is the entry point.
    layer('cli', 'app', 'http', 'features', 'intake', 'notify', 'connectors', 'oauth', 'mail', 'store', 'kernel'),
    layer('http', 'features', 'intake', 'notify', 'connectors', 'oauth', 'mail', 'store', 'kernel'),
    {
      name: 'no-circular',
      comment: 'Two modules that import each other (directly or around a loop) cannot be read or tested alone.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'product-code-imports-no-tests',
      comment: 'Code that ships never imports test helpers or test files.',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: '(^test/|\\.test\\.ts$)' },
    },
    {
      name: 'unit-tests-use-test-kit-only',
      comment:
        'A colocated unit test (src/**/*.test.ts) starts no server: it may use test/kit/ (pure helpers), ' +
        'never test/support/ (Dovecot, PostgreSQL, SMTP and OAuth harnesses) or any other part of test/.',
      severity: 'error',
      from: { path: '^src/.+\\.test\\.ts$' },
      to: { path: '^test/', pathNot: '^test/kit/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing is a typo or a missing package.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
