/**
 * JsSIP for the browser, bundled once from node_modules/jssip with esbuild (installed with tsx).
 * The npm package ships only CommonJS sources (no dist/), so the page gets a single IIFE that
 * defines `window.JsSIP`. Built lazily on first request, then served from memory: no CDN.
 */
let cached: Promise<string> | undefined;

export function jssipBundle(): Promise<string> {
  cached ??= (async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const esbuild = require('esbuild') as typeof import('esbuild');
    const out = await esbuild.build({
      entryPoints: [require.resolve('jssip')],
      bundle: true,
      format: 'iife',
      globalName: 'JsSIP',
      platform: 'browser',
      target: 'es2020',
      minify: true,
      write: false,
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    return out.outputFiles[0]!.text;
  })();
  cached.catch(() => {
    cached = undefined;
  });
  return cached;
}
