/** The two databases Mailintake runs on: the embedded default and PostgreSQL (DATABASE_URL). */
export type Engine = 'sqlite' | 'postgres';
