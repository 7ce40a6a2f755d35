/** `ferry start`: placeholder until its issue lands. */
export async function run(_args: string[]): Promise<void> {
  throw new Error('ferry start is not built yet');
}
