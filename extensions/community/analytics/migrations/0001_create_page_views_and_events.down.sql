drop table events;
drop table page_views;
