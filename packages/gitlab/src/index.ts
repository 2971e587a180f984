export const platform = 'gitlab' as const;
