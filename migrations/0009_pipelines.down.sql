drop table annex.stage_health;
drop table annex.pipelines;
drop table annex.pipeline_stages;
