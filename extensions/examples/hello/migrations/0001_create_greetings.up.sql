-- Who said hello. Unqualified: it lands in this extension's own schema (ext_hello).
create table greetings (
    id   bigserial primary key,
    name text not null              -- who greeted
);
