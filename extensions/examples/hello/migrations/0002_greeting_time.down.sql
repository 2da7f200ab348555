alter table greetings drop column greeted_at;
