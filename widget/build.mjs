// Builds dist/ from src/ and i18n/: `npm ci && npm run build` in this folder (or `make widget`).
// dist/ is committed, so chip serves the widget without Node. chip fills in the loader's
// __BUNDLE__ with the bundle's hashed URL when it starts.
import { readFile } from "node:fs/promises";
import { build, transform } from "esbuild";

const common = { bundle: true, minify: true, format: "iife", target: ["chrome90", "firefox90", "safari14"], legalComments: "none" };

// the stylesheet goes into the bundle as a minified string, for the shadow root's constructable stylesheet
const cssAsText = {
  name: "css-as-text",
  setup(b) {
    b.onLoad({ filter: /\.css$/ }, async (args) => {
      const { code } = await transform(await readFile(args.path, "utf8"), { loader: "css", minify: true });
      return { contents: code, loader: "text" };
    });
  },
};

await build({ ...common, entryPoints: ["src/main.js"], outfile: "dist/chip.js", plugins: [cssAsText] });
await build({ ...common, entryPoints: ["src/loader.js"], outfile: "dist/loader.js" });
