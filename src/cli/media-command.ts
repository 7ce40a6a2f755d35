/** `ferry media`: placeholder until its issue lands. */
export async function run(_args: string[]): Promise<void> {
  throw new Error('ferry media is not built yet');
}
