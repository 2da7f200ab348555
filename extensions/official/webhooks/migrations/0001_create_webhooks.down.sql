drop table attempts;
drop table deliveries;
drop table subscriptions;
