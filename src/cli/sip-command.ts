/** `ferry sip`: placeholder until its issue lands. */
export async function run(_args: string[]): Promise<void> {
  throw new Error('ferry sip is not built yet');
}
