drop table greetings;
