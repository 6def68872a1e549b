# Runs of lm-evaluation-harness (config `lm_eval:`) join as models: each listed task of a log
# is read, graded as lm-eval graded it and checked against lm-eval's metrics, instead of being
# prepared and collected (calibbench.lmeval.workflow). From the graded table on, its jobs are
# the same as every model's.


# One reading of a model's log per task: its graded table, the manifest that stands for its
# collection, and the task's items and information as this log has them.
rule lm_eval_graded:
    wildcard_constraints:
        model=one_of(LM_EVAL),
        task=one_of(LM_EVAL_TASKS),
    output:
        graded=f"{RESULTS}/graded/{{model}}/{{task}}.parquet",
        manifest=f"{RESULTS}/collect/{{model}}/{{task}}/answers/manifest.json",
        task_items=f"{RESULTS}/lm_eval/{{model}}/{{task}}/items.parquet",
        info=f"{RESULTS}/lm_eval/{{model}}/{{task}}/task.json",
    params:
        path=lambda wc: LM_EVAL[wc.model]["path"],
        name=lambda wc: lmeval.log_task(wc.task),
    log:
        f"{LOGS}/lm_eval/{{model}}/{{task}}.log",
    shell:
        "calibbench lm-eval-task {params.path:q} --task {params.name:q}"
        " --graded {output.graded} --manifest {output.manifest}"
        " --items {output.task_items} --info {output.info} > {log} 2>&1"


# The task's items and information are those of the first log that holds the task.
rule lm_eval_task:
    wildcard_constraints:
        task=one_of(LM_EVAL_TASKS),
    input:
        task_items=lambda wc: f"{RESULTS}/lm_eval/{LM_EVAL_TASKS[wc.task]}/{wc.task}/items.parquet",
        info=lambda wc: f"{RESULTS}/lm_eval/{LM_EVAL_TASKS[wc.task]}/{wc.task}/task.json",
    output:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        info=f"{RESULTS}/tasks/{{task}}/task.json",
    shell:
        "cp {input.task_items} {output.task_items} && cp {input.info} {output.info}"
