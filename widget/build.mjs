// Builds dist/ from src/ and i18n/: `npm ci && npm run build` in this folder. dist/ is committed,
// so chip serves the widget without Node. chip fills in the loader's __BUNDLE__ with the bundle's
// hashed URL when it starts.
import { build } from "esbuild";

const common = { bundle: true, minify: true, format: "iife", target: ["chrome90", "firefox90", "safari14"], legalComments: "none" };

await build({ ...common, entryPoints: ["src/main.js"], outfile: "dist/chip.js", loader: { ".css": "text", ".json": "json" } });
await build({ ...common, entryPoints: ["src/loader.js"], outfile: "dist/loader.js" });
