/**
 * Loaded into ferry processes for fault tests only (`node --require tsx/cjs --require <this file>`,
 * through NODE_OPTIONS): on SIGUSR2 it makes one stray promise rejection and throws one exception
 * from a timer — the two faults that used to end every call on the box. Nothing in ferry's own code
 * paths knows about it.
 */
process.on('SIGUSR2', () => {
  void Promise.reject(new Error('injected stray rejection'));
  setTimeout(() => {
    throw new Error('injected uncaught exception');
  }, 0);
});
